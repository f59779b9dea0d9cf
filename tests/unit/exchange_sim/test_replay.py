"""``--replay``: kline CSV files played back as the market."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from services.exchange_sim.app import SimOptions, build_exchange
from services.exchange_sim.replay import ReplayError, load_replay

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "replay"


def _rows(name: str) -> list[list[str]]:
    with (FIXTURES / name).open() as fh:
        return [r for r in csv.reader(fh) if r and r[0].isdigit()]


def test_every_file_candle_is_served_back_exactly() -> None:
    ex = build_exchange(SimOptions(replay=FIXTURES, symbols=[], api_key="k", api_secret="s"))
    assert set(ex.markets) == {"BTCUSDT", "ETHUSDT"}
    for symbol, name, interval in (
        ("BTCUSDT", "BTCUSDT-1m.csv", "1m"),
        ("ETHUSDT", "ETHUSDT-5m.csv", "5m"),
    ):
        rows = _rows(name)
        market = ex.markets[symbol]
        end_ms = int(rows[-1][6]) + 3_600_000  # after the file: every candle closed
        served = market.klines(interval, end_ms, start_ms=int(rows[0][0]), limit=1000)
        assert len(served) >= len(rows)
        for got, want in zip(served, rows, strict=False):
            assert got[0] == int(want[0]) and got[6] == int(want[6])
            assert [Decimal(x) for x in got[1:6]] == [Decimal(x) for x in want[1:6]]
            assert Decimal(got[7]) == Decimal(want[7]) and got[8] == int(want[8])
    # coarser intervals are aggregates of the replayed ones
    btc = ex.markets["BTCUSDT"]
    rows = _rows("BTCUSDT-1m.csv")
    hour = btc.klines("1h", int(rows[-1][6]) + 1, start_ms=int(rows[0][0]), limit=1)[0]
    assert Decimal(hour[2]) == max(Decimal(r[2]) for r in rows[:60])
    assert Decimal(hour[5]) == sum(Decimal(r[5]) for r in rows[:60])


def test_the_clock_starts_inside_the_file_with_history_before_it() -> None:
    ex = build_exchange(
        SimOptions(replay=FIXTURES, symbols=["BTCUSDT"], api_key="k", api_secret="s")
    )
    rows = _rows("BTCUSDT-1m.csv")
    assert int(rows[0][0]) < ex.clock.start_ms < int(rows[-1][6])
    history = ex.markets["BTCUSDT"].klines("1m", ex.clock.start_ms, limit=1000)
    assert 60 <= len(history) < len(rows)


def test_missing_symbols_and_bad_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="DOGEUSDT"):
        load_replay(FIXTURES, ["DOGEUSDT"])
    with pytest.raises(ReplayError, match="not a directory"):
        load_replay(tmp_path / "nope")
    (tmp_path / "BTCUSDT-1m.csv").write_text("1704067200000,1,2\n")
    with pytest.raises(ReplayError, match=r"BTCUSDT-1m\.csv:1"):
        load_replay(tmp_path)
