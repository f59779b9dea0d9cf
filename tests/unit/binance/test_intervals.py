"""Interval arithmetic: every instant lies in exactly one candle; weeks start Monday; months are calendar months."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.binance.intervals import (
    DAY_MS,
    INTERVALS,
    check_interval,
    close_time_of,
    interval_ms,
    is_closed,
    max_interval_ms,
    next_open_time,
    open_time_of,
)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


# 2017-01-01 .. 2100-01-01, the range Binance timestamps live in.
timestamps = st.integers(min_value=ms(2017, 1, 1), max_value=ms(2100, 1, 1))


def test_doc_example_close_time_is_open_plus_interval_minus_one() -> None:
    # reference §2.3: 1672515780000 -> 1672515839999
    assert close_time_of("1m", 1672515780000) == 1672515839999


def test_rest_kline_doc_example_is_a_1w_candle_from_monday() -> None:
    # reference §11: open 1499040000000 (Mon 2017-07-03), close 1499644799999
    assert datetime.fromtimestamp(1499040000000 / 1000, tz=UTC).weekday() == 0
    assert open_time_of("1w", 1499040000000 + 3 * DAY_MS) == 1499040000000
    assert close_time_of("1w", 1499040000000) == 1499644799999


def test_weeks_start_monday_midnight_utc() -> None:
    sunday_night = ms(2026, 7, 19, 23, 59, 59)
    assert open_time_of("1w", sunday_night) == ms(2026, 7, 13)
    assert open_time_of("1w", ms(2026, 7, 20)) == ms(2026, 7, 20)


def test_months_are_calendar_months() -> None:
    assert open_time_of("1M", ms(2024, 2, 29, 12)) == ms(2024, 2, 1)
    assert next_open_time("1M", ms(2024, 2, 1)) == ms(2024, 3, 1)
    assert close_time_of("1M", ms(2024, 2, 1)) == ms(2024, 3, 1) - 1
    assert next_open_time("1M", ms(2025, 12, 1)) == ms(2026, 1, 1)


def test_unknown_interval_raises_value_error_naming_it() -> None:
    for bad in ("2m", "1H", "", "1mo"):
        with pytest.raises(ValueError, match=repr(bad)):
            check_interval(bad)
        with pytest.raises(ValueError, match=repr(bad)):
            open_time_of(bad, 0)


def test_month_has_no_fixed_length_but_a_bound() -> None:
    with pytest.raises(ValueError, match="calendar month"):
        interval_ms("1M")
    assert max_interval_ms("1M") == 31 * DAY_MS
    assert max_interval_ms("1m") == 60_000


@given(st.sampled_from(INTERVALS), timestamps)
def test_every_instant_lies_in_the_candle_open_time_of_returns(interval: str, ts: int) -> None:
    open_time = open_time_of(interval, ts)
    close = close_time_of(interval, open_time)
    assert open_time <= ts <= close
    assert open_time_of(interval, open_time) == open_time  # idempotent
    assert open_time_of(interval, close) == open_time
    assert open_time_of(interval, close + 1) == close + 1  # the next candle starts right after
    assert next_open_time(interval, open_time) == close + 1
    assert not is_closed(interval, open_time, close)
    assert is_closed(interval, open_time, close + 1)


@given(st.sampled_from([i for i in INTERVALS if i != "1M"]), timestamps)
def test_fixed_intervals_have_their_length(interval: str, ts: int) -> None:
    open_time = open_time_of(interval, ts)
    assert close_time_of(interval, open_time) - open_time + 1 == interval_ms(interval)
    if interval == "1w":
        assert datetime.fromtimestamp(open_time / 1000, tz=UTC).weekday() == 0


@given(timestamps)
def test_month_candles_open_on_the_first_and_last_28_to_31_days(ts: int) -> None:
    open_time = open_time_of("1M", ts)
    start = datetime.fromtimestamp(open_time / 1000, tz=UTC)
    assert (start.day, start.hour, start.minute, start.second) == (1, 0, 0, 0)
    length_days = (next_open_time("1M", open_time) - open_time) / DAY_MS
    assert length_days in (28, 29, 30, 31)
