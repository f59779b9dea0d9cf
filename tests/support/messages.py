"""Stream messages made by tests and benches: flat candles and execution reports."""

from __future__ import annotations

import itertools
from decimal import Decimal

from shared.messages import Candle, ExecutionReport, ExecutionStatus, Fill, Side

_ids = itertools.count()


def candle(
    symbol: str, interval_ms: int, open_time: int, close: float | str, interval: str = "1m"
) -> Candle:
    """A closed candle whose open, high, low and close are all ``close``."""
    c = Decimal(str(close))
    return Candle(
        symbol=symbol,
        interval=interval,
        open_time=open_time,
        close_time=open_time + interval_ms - 1,
        open=c,
        high=c,
        low=c,
        close=c,
        volume=Decimal(1),
    )


def report(
    side: Side,
    *fills: tuple[str, str, str, str],
    intent_id: str | None = None,
    final: bool = True,
    ts: int = 0,
    reason: str = "",
) -> ExecutionReport:
    """A FILLED report of bot ``bot`` on BTCUSDT; fills: (price, qty, commission,
    commission asset)."""
    return ExecutionReport(
        intent_id=intent_id or f"bot:{next(_ids)}:{side}",
        client_order_id="bf-x",
        bot_id="bot",
        symbol="BTCUSDT",
        side=side,
        status=ExecutionStatus.FILLED,
        final=final,
        fills=tuple(
            Fill(price=Decimal(p), qty=Decimal(q), commission=Decimal(c), commission_asset=a)
            for p, q, c, a in fills
        ),
        ts=ts,
        reason=reason,
    )
