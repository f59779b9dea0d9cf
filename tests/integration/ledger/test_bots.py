"""What the ledger copies from the bots' records in Redis: round trips once each (also
with two ledgers and after a restart), a config version per change, a daily equity
snapshot per bot, and the portfolio's equity as their sum."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.dbstate import DbState
from services.ledger.snapshots import BotRecorder
from services.ledger.writer import LedgerWriter
from shared import keys
from shared.ledger import history, schema
from tests.integration.ledger.helpers import count


def trip(n: int) -> dict[str, str]:
    return {
        "symbol": "BTCUSDT",
        "opened_at": str(1_700_000_000_000 + n * 60_000),
        "closed_at": str(1_700_000_030_000 + n * 60_000),
        "qty": "0.01",
        "entry_price": "43000.10",
        "exit_price": "43100.20",
        "cost": "430.001",
        "proceeds": "431.002",
        "fees": "0.861003",
        "pnl": "0.139997",
        "pnl_pct": "0.0325573661",
        "exit_reason": "take_profit",
        "dust": "0",
    }


async def put_bot(redis: Any, bot_id: str, config: dict[str, Any], equity: str) -> None:
    await redis.zadd(keys.BOTS, {bot_id: 1})
    await redis.hset(keys.bot(bot_id), mapping={"config": json.dumps(config), "desired": "running"})
    await redis.hset(
        keys.bot_stats(bot_id),
        mapping={"equity": equity, "realized_pnl": "1.5", "total_pnl": "2.25", "fees": "0.1",
                 "trades": "3"},
    )  # fmt: skip


async def test_round_trips_configs_and_equity_are_recorded_once(
    redis: Any, engine: AsyncEngine
) -> None:
    writer = LedgerWriter(engine)
    await put_bot(redis, "bot-a", {"symbol": "BTCUSDT", "period": 14}, "1000.123456789")
    await put_bot(redis, "bot-b", {"symbol": "ETHUSDT"}, "500.000000001")
    for n in range(30):
        await redis.xadd(keys.bot_trades("bot-a"), trip(n))

    one, two = (BotRecorder(redis, writer, DbState()) for _ in range(2))
    await one.record_once()
    await two.record_once()  # a second ledger on the same bots
    await one.record_once()  # and the first one's next pass
    assert await count(engine, schema.round_trips) == 30
    assert await count(engine, schema.bot_configs) == 2

    await redis.xadd(keys.bot_trades("bot-a"), trip(30))
    await redis.hset(keys.bot("bot-a"), "config", json.dumps({"symbol": "BTCUSDT", "period": 21}))
    restarted = BotRecorder(redis, writer, DbState())  # no cursor: reads every trip again
    await restarted.record_once()
    await one.record_once()
    assert await count(engine, schema.round_trips) == 31
    async with engine.connect() as conn:
        versions = (
            await conn.execute(
                select(schema.bot_configs.c.version, schema.bot_configs.c.config)
                .where(schema.bot_configs.c.bot_id == "bot-a")
                .order_by(schema.bot_configs.c.version)
            )
        ).all()
    assert [v.version for v in versions] == [1, 2]
    assert json.loads(versions[1].config)["period"] == 21

    trips = await history.round_trips(engine, history.Filters(bot_id="bot-a"), limit=100)
    assert len(trips.items) == 31 and trips.items[0].fees == Decimal("0.861003")

    (point,) = await history.equity(engine, "bot-a")
    assert point.equity == Decimal("1000.123456789") and point.trades == 3
    await redis.hset(keys.bot_stats("bot-a"), "equity", "1001")
    await one.record_once()  # the day's snapshot holds the latest figures
    (point,) = await history.equity(engine, "bot-a")
    assert point.equity == Decimal("1001")
    (portfolio,) = await history.equity(engine, None)
    assert portfolio.equity == Decimal("1501.000000001") and portfolio.bots == 2


async def test_a_malformed_round_trip_is_skipped_and_the_rest_recorded(
    redis: Any, engine: AsyncEngine
) -> None:
    await put_bot(redis, "bot-c", {"symbol": "BTCUSDT"}, "10")
    await redis.xadd(keys.bot_trades("bot-c"), trip(1))
    await redis.xadd(keys.bot_trades("bot-c"), {**trip(2), "pnl": "NaN"})
    await redis.xadd(keys.bot_trades("bot-c"), {"symbol": "BTCUSDT"})
    await redis.xadd(keys.bot_trades("bot-c"), trip(3))
    await BotRecorder(redis, LedgerWriter(engine), DbState()).record_once()
    assert await count(engine, schema.round_trips) == 2
