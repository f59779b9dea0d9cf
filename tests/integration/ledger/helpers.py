"""Execution reports as the gateway writes them, and reads of what the ledger holds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import keys
from shared.bots import client_order_id
from shared.ledger import schema
from shared.messages import ExecutionReport, ExecutionStatus, Fill, Side, encode

T0 = 1_700_000_000_000  # 2023-11-14


def report(
    n: int,
    *,
    bot: str = "bot-1",
    symbol: str = "BTCUSDT",
    fills: int = 1,
    ts: int | None = None,
    mode: str = "live",
    side: Side | None = None,
) -> ExecutionReport:
    """The final FILLED report of intent ``n`` with ``fills`` trades (ids from ``n``)."""
    intent = f"{bot}:c{n}:{'buy' if n % 2 == 0 else 'sell'}"
    trades = tuple(
        Fill(
            price=Decimal("43210.12345678") + Decimal(n % 97) / 100,
            qty=Decimal("0.00123457"),
            commission=Decimal("0.00000123"),
            commission_asset="BNB",
            trade_id=(n * 10 + k + 1) if mode == "live" else 0,
        )
        for k in range(fills)
    )
    qty = sum((f.qty for f in trades), Decimal(0))
    quote = sum((f.qty * f.price for f in trades), Decimal(0))
    return ExecutionReport(
        intent_id=intent,
        client_order_id=client_order_id(intent),
        bot_id=bot,
        symbol=symbol,
        side=side or (Side.BUY if n % 2 == 0 else Side.SELL),
        status=ExecutionStatus.FILLED,
        final=True,
        executed_qty=qty,
        cumulative_quote=quote,
        avg_price=(quote / qty) if qty else Decimal(0),
        commission=sum((f.commission for f in trades), Decimal(0)),
        commission_asset="BNB",
        fills=trades,
        exchange_order_id=1_000_000 + n,
        mode=mode,
        ts=T0 + n * 1000 if ts is None else ts,
    )


async def publish(redis: Any, reports: list[ExecutionReport]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for r in reports:
            pipe.xadd(keys.EXECUTIONS, encode(r))
        ids = await pipe.execute()
    return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def fill_keys(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(schema.fills.c.fill_key))).scalars())


async def pending(redis: Any) -> int:
    info = await redis.xpending(keys.EXECUTIONS, keys.LEDGER_GROUP)
    return int(info["pending"])
