"""The stale-data gate (issue 10): whether a series' data is fresh, measured on the
exchange's clock (``market:clock``), and the bots to tell when a series' verdict
changes. Owns the clock sample and the grace; the verdict itself is
:func:`.core.stale_reason`, the per-bot change :meth:`.core.BotState.set_stale`.
"""

from __future__ import annotations

from services.runner.core import BotState, Change, stale_reason
from services.runner.holdings import Holdings
from services.runner.market import Series
from shared import keys
from shared.exchange_clock import ExchangeClock, read_exchange_clock
from shared.redis import now_ms


class StaleGate:
    def __init__(self, held: Holdings) -> None:
        self.held = held
        self.grace_ms = int(held.settings.runner_stale_grace_s * 1000)
        self.clock: ExchangeClock | None = None  # market:clock, read every second

    async def refresh(self) -> None:
        """Sample the exchange clock and the latest price times (``market:last-update``)."""
        redis, market = self.held.redis, self.held.market
        self.clock = await read_exchange_clock(redis)
        symbols = sorted(market.symbol_bots)
        if symbols:
            updated = await redis.hmget(keys.MARKET_LAST_UPDATE, symbols)
            for symbol, value in zip(symbols, updated, strict=True):
                if value:
                    ts = int(value)
                    if ts > market.last_price_at.get(symbol, 0):
                        market.last_price_at[symbol] = ts

    def market_now(self, now: int) -> int:
        """The exchange's time at local time ``now``: data ages are measured on the
        clock that stamped the data (``market:clock``, sampled by ingestion; a sped-up
        simulator runs ahead of the wall clock). The local clock when none is known."""
        return self.clock.now(now) if self.clock is not None else now

    def series_stale(self, series: Series, now: int | None = None) -> str:
        return stale_reason(
            series.symbol,
            series.interval_ms,
            series.last_close_time,
            self.held.market.last_price_at.get(series.symbol),
            self.market_now(now if now is not None else now_ms()),
            self.grace_ms,
        )

    def stale_for(self, state: BotState, now: int | None = None) -> str:
        ref = self.held.group_of.get(state.bot_id)
        if ref is None:
            return ""
        return self.series_stale(ref[0], now)

    def changes(self, now: int) -> dict[str, tuple[BotState, Change]]:
        """The gate's pass, per series: only the bots of a series whose verdict changed
        (or that gained bots) are looked at."""
        out: dict[str, tuple[BotState, Change]] = {}
        for series in self.held.market.series.values():
            stale = self.series_stale(series, now)
            if stale == series.stale:
                continue
            series.stale = stale
            for group in series.groups.values():
                for bot_id in group.bots:
                    state = self.held.bots.get(bot_id)
                    if state is not None:
                        change = state.set_stale(stale, now)
                        if not change.empty:
                            out[bot_id] = (state, change)
        return out
