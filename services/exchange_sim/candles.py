"""Klines of every interval, aggregated from one symbol's per-second path.

Owns :class:`SymbolMarket` (a path source plus cached hour aggregates, the visible
horizon of a frozen market, and the wire formatting of prices and volumes) and the
``GET /api/v3/klines`` selection rules (reference §3 "Time-ordering", §3.4). A candle
of interval I that opened at ``t`` is the aggregate of seconds ``t .. T`` (``T`` its
close time), so every interval agrees with every other and a closed candle served
over REST is exactly the one the WebSocket closed.
"""

from __future__ import annotations

from decimal import Decimal

from services.exchange_sim.market import (
    HOUR_S,
    QUOTE_UNIT,
    PathSource,
    Summary,
    merge,
    summarize,
)
from shared.binance.intervals import next_open_time, open_time_of

MAX_KLINES = 1000
_CLOSED_CACHE = 200_000  # rows of closed candles kept per symbol (backfills repeat)
DEFAULT_KLINES = 500
_E8 = 10**8


def _units(value: Decimal) -> int:
    """``value`` in integer 1e-8 units; the simulator refuses finer ticks or steps."""
    scaled = value / QUOTE_UNIT
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise ValueError(f"{value} is not a positive multiple of 1e-8")
    return int(scaled)


def fmt8(units: int) -> str:
    """An integer of 1e-8 units as Binance's 8-decimal string ("0.00100000")."""
    whole, frac = divmod(abs(units), _E8)
    return f"{'-' if units < 0 else ''}{whole}.{frac:08d}"


KlineRow = list[object]  # the 12-element REST row


class SymbolMarket:
    """One symbol's path, aggregated and formatted."""

    def __init__(self, source: PathSource, first_second: int | None = None) -> None:
        self.source = source
        self.spec = source.spec
        self.symbol = source.spec.symbol
        self.first_second = max(source.first_second, first_second or 0)
        self._tick_u = _units(self.spec.tick)
        self._step_u = _units(self.spec.base_unit)
        self._hours: dict[int, Summary] = {}
        self._closed: dict[tuple[str, int], KlineRow] = {}  # closed candles never change
        # minute-aligned ranges straight from minute candles, when the source has them
        self._by_minute = getattr(source, "minute_summary", None)
        self._price_str: dict[int, str] = {}  # formatting cache: prices repeat a lot
        # While frozen, nothing after this second is visible (None: not frozen).
        self.frozen_at: int | None = None

    # --- raw path ---------------------------------------------------------------------

    def price_ticks(self, second: int) -> int:
        second = max(second, self.source.first_second)
        return int(self.source.block(second // HOUR_S).p[second % HOUR_S])

    def price(self, second: int) -> Decimal:
        return Decimal(self.price_ticks(second)) * self.spec.tick

    def visible_second(self, now_s: int) -> int:
        """The last second a client may see at exchange second ``now_s``."""
        return now_s if self.frozen_at is None else min(now_s, self.frozen_at)

    def hour_summary(self, hour: int) -> Summary:
        found = self._hours.get(hour)
        if found is None:
            found = self.source.summary(hour)
            self._hours[hour] = found
        return found

    def second_summary(self, second: int) -> Summary:
        return summarize(
            self.source.block(second // HOUR_S),
            second - second % HOUR_S,
            second % HOUR_S,
            second % HOUR_S + 1,
        )

    def aggregate(self, s0: int, s1: int) -> Summary | None:
        """Aggregate of seconds ``s0 .. s1-1`` (None if the range is empty)."""
        s0 = max(s0, self.source.first_second)
        result: Summary | None = None
        s = s0
        while s < s1:
            hour = s // HOUR_S
            base = hour * HOUR_S
            end = min(s1, base + HOUR_S)
            if s == base and end == base + HOUR_S:
                part = self.hour_summary(hour)
            elif self._by_minute is not None and s % 60 == 0 and end % 60 == 0:
                part = self._by_minute(hour, (s - base) // 60, (end - base) // 60)
            else:
                part = summarize(self.source.block(hour), base, s - base, end - base)
            result = part if result is None else merge(result, part)
            s = end
        return result

    # --- wire formatting ----------------------------------------------------------------

    def fmt_price(self, ticks: int) -> str:
        cached = self._price_str.get(ticks)
        if cached is None:
            if len(self._price_str) > 100_000:
                self._price_str.clear()
            cached = self._price_str[ticks] = fmt8(ticks * self._tick_u)
        return cached

    @property
    def step_units(self) -> int:
        """One volume step (the base unit) in integer 1e-8 units."""
        return self._step_u

    def fmt_qty(self, steps: int) -> str:
        return fmt8(steps * self._step_u)

    def row(self, interval: str, open_ms: int, agg: Summary) -> KlineRow:
        close_ms = next_open_time(interval, open_ms) - 1
        return [
            open_ms,
            self.fmt_price(agg.o),
            self.fmt_price(agg.h),
            self.fmt_price(agg.l),
            self.fmt_price(agg.c),
            self.fmt_qty(agg.v),
            close_ms,
            fmt8(agg.q),
            agg.n,
            self.fmt_qty(agg.tb),
            fmt8(agg.tbq),
            "0",
        ]

    def candle(self, interval: str, open_ms: int, now_s: int) -> Summary | None:
        """The candle that opened at ``open_ms`` as it stands at second ``now_s``."""
        end_s = next_open_time(interval, open_ms) // 1000
        return self.aggregate(open_ms // 1000, min(end_s, self.visible_second(now_s) + 1))

    # --- GET /api/v3/klines ---------------------------------------------------------------

    def klines(
        self,
        interval: str,
        now_ms: int,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = DEFAULT_KLINES,
    ) -> list[KlineRow]:
        """Rows as Binance selects them (§3): none -> the latest ``limit``; startTime ->
        the oldest from it; endTime -> the latest up to it; both -> from start, not
        past end. The last row may be the candle still open."""
        now_s = self.visible_second(now_ms // 1000)
        first_open = open_time_of(interval, self.first_second * 1000)
        if first_open < self.first_second * 1000:
            first_open = next_open_time(interval, first_open)
        last_open = open_time_of(interval, now_s * 1000)
        if end_ms is not None:
            last_open = min(last_open, open_time_of(interval, end_ms))
        opens: list[int] = []
        if start_ms is not None:
            t = open_time_of(interval, max(start_ms, first_open))
            if t < start_ms:
                t = next_open_time(interval, t)
            while t <= last_open and len(opens) < limit:
                opens.append(t)
                t = next_open_time(interval, t)
        else:
            t = last_open
            while t >= first_open and len(opens) < limit:
                opens.append(t)
                t = open_time_of(interval, t - 1)
            opens.reverse()
        rows: list[KlineRow] = []
        for open_ms in opens:
            key = (interval, open_ms)
            row = self._closed.get(key)
            if row is None:
                agg = self.candle(interval, open_ms, now_s)
                if agg is None:
                    continue
                row = self.row(interval, open_ms, agg)
                closed = next_open_time(interval, open_ms) <= now_s * 1000
                if closed and self.frozen_at is None:  # a closed candle is final
                    if len(self._closed) >= _CLOSED_CACHE:
                        self._closed.clear()
                    self._closed[key] = row
            rows.append(row)
        return rows
