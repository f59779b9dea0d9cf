"""Kline intervals: their names and the open/close-time arithmetic of each.

Owns: the list of Binance intervals and the mapping of a timestamp to the candle
that contains it. Binance identifies a kline by its open time, and its close time
is the next open time minus one millisecond (reference §2.3: ``T = t + interval - 1``).

Alignment (all UTC, epoch milliseconds):

- ``1s`` .. ``3d``: multiples of the interval length since the Unix epoch.
  (``3d`` epoch alignment is the usual reading of the venue's data [UNVERIFIED]).
- ``1w``: weeks start on Monday 00:00 UTC (the epoch was a Thursday, so weeks are
  aligned to 1970-01-05).
- ``1M``: calendar months, starting on the 1st at 00:00 UTC; 28 to 31 days long, so
  :func:`interval_ms` refuses it and :func:`next_open_time` does the calendar step.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Reference §2.3: "Intervals (case-sensitive): 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M".
INTERVALS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M",
)  # fmt: skip

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
# 1970-01-05 00:00 UTC, the first Monday after the epoch: the origin of Binance weeks.
_WEEK_ORIGIN_MS = 4 * DAY_MS
MONTH = "1M"

_FIXED_MS: dict[str, int] = {
    "1s": SECOND_MS,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": WEEK_MS,
}


def check_interval(interval: str) -> str:
    """Return ``interval`` if Binance knows it, else raise ``ValueError`` naming it."""
    if interval not in _FIXED_MS and interval != MONTH:
        raise ValueError(
            f"unknown Binance interval {interval!r}; expected one of {', '.join(INTERVALS)}"
        )
    return interval


def is_interval(interval: str) -> bool:
    return interval in _FIXED_MS or interval == MONTH


def interval_ms(interval: str) -> int:
    """Length of a fixed-length interval in milliseconds.

    ``1M`` has no fixed length (calendar months): it raises ``ValueError``; use
    :func:`next_open_time` / :func:`close_time_of`, or :func:`max_interval_ms` for a bound.
    """
    check_interval(interval)
    if interval == MONTH:
        raise ValueError(
            "interval '1M' is a calendar month (28-31 days) with no fixed length; "
            "use next_open_time() or close_time_of()"
        )
    return _FIXED_MS[interval]


def max_interval_ms(interval: str) -> int:
    """Longest possible length of one candle of ``interval`` (31 days for ``1M``).

    For staleness bounds ("no data for longer than one interval plus grace").
    """
    check_interval(interval)
    return 31 * DAY_MS if interval == MONTH else _FIXED_MS[interval]


def _month_start(ts_ms: int) -> datetime:
    dt = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _to_ms(dt: datetime) -> int:
    return int(dt.timestamp()) * 1000


def open_time_of(interval: str, ts_ms: int) -> int:
    """Open time of the ``interval`` candle that contains the instant ``ts_ms``."""
    check_interval(interval)
    if interval == MONTH:
        return _to_ms(_month_start(ts_ms))
    length = _FIXED_MS[interval]
    if interval == "1w":
        return ts_ms - (ts_ms - _WEEK_ORIGIN_MS) % length
    return ts_ms - ts_ms % length


def next_open_time(interval: str, open_time: int) -> int:
    """Open time of the candle after the one containing ``open_time``."""
    start = open_time_of(interval, open_time)
    if interval == MONTH:
        dt = datetime.fromtimestamp(start // 1000, tz=UTC)
        if dt.month == 12:
            return _to_ms(dt.replace(year=dt.year + 1, month=1))
        return _to_ms(dt.replace(month=dt.month + 1))
    return start + _FIXED_MS[interval]


def close_time_of(interval: str, open_time: int) -> int:
    """Close time of the candle containing ``open_time``: next open time - 1 ms (§2.3)."""
    return next_open_time(interval, open_time) - 1


def is_closed(interval: str, open_time: int, now_ms: int) -> bool:
    """Whether the candle that opened at ``open_time`` is over at ``now_ms``."""
    return now_ms > close_time_of(interval, open_time)
