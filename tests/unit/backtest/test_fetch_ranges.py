"""The fetcher's pure parts: ``--from/--to`` wording and the months a range touches."""

from __future__ import annotations

import pytest

from services.backtest.fetch import exchange_folder, months
from shared.backtests import parse_when

JAN_1 = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def test_dates_times_and_epoch_ms_are_utc_ms() -> None:
    assert parse_when("2025-01-01") == JAN_1
    assert parse_when("2025-01-01T01:00:00") == JAN_1 + 3_600_000
    assert parse_when("2025-01-01T01:00:00Z") == JAN_1 + 3_600_000
    assert parse_when("2025-01-01T02:00:00+01:00") == JAN_1 + 3_600_000
    assert parse_when(str(JAN_1)) == JAN_1
    with pytest.raises(ValueError, match=r"--from: 'yesterday' is not a date"):
        parse_when("yesterday", "--from")


def test_a_range_touches_every_month_it_overlaps_and_no_other() -> None:
    feb_1, mar_1 = parse_when("2025-02-01"), parse_when("2025-03-01")
    assert months(JAN_1, feb_1) == [("2025-01", JAN_1, feb_1)]
    assert [m[0] for m in months(JAN_1 + 1, feb_1 + 1)] == ["2025-01", "2025-02"]
    assert months(feb_1, mar_1) == [("2025-02", feb_1, mar_1)]
    assert [m[0] for m in months(parse_when("2024-12-31"), feb_1)] == ["2024-12", "2025-01"]


def test_each_exchange_has_its_own_cache_folder() -> None:
    assert exchange_folder("https://api.binance.com") == "api.binance.com"
    assert exchange_folder("https://testnet.binance.vision/") == "testnet.binance.vision"
    assert exchange_folder("http://127.0.0.1:8421") == "127.0.0.1_8421"
