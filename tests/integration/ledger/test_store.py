"""The ledger's store on both engines (a real PostgreSQL started by the session, and
SQLite): unique keys, exact money, migrations, a year of fills read back page by page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.migrations import MIGRATIONS, MigrationError, current_version, migrate
from services.ledger.writer import Batch, LedgerWriter
from shared.ledger import history, schema
from shared.ledger.engine import create_engine
from shared.messages import Side
from tests.integration.ledger.helpers import T0, count, fill_keys, report


async def test_a_report_written_twice_is_stored_once(engine: AsyncEngine) -> None:
    writer = LedgerWriter(engine)
    batch = Batch()
    for n in range(10):
        batch.add_report(report(n, fills=3), f"{n}-0")
    first = await writer.write(batch)
    again = await writer.write(batch)  # a redelivery of the same entries
    replay = Batch()  # the same reports appended again under new stream ids
    for n in range(10):
        replay.add_report(report(n, fills=3), f"{n + 100}-0")
    await writer.write(replay)
    assert (first.orders, first.fills) == (10, 30)
    assert (again.orders, again.fills) == (0, 0)
    assert await count(engine, schema.orders) == 10
    assert await count(engine, schema.fills) == 30
    assert len(set(await fill_keys(engine))) == 30


async def test_paper_fills_without_trade_ids_are_keyed_by_intent(engine: AsyncEngine) -> None:
    writer = LedgerWriter(engine)
    batch = Batch()
    for n in range(5):
        batch.add_report(report(n, fills=2, mode="paper"), f"{n}-0")
    await writer.write(batch)
    await writer.write(batch)
    assert sorted(await fill_keys(engine)) == sorted(
        f"bot-1:c{n}:{'buy' if n % 2 == 0 else 'sell'}#{k}" for n in range(5) for k in range(2)
    )


async def test_money_comes_back_as_the_exact_decimal(engine: AsyncEngine) -> None:
    writer = LedgerWriter(engine)
    r = report(1)
    batch = Batch()
    batch.add_report(r, "1-0")
    await writer.write(batch)
    page = await history.trades(engine, history.Filters())
    (trade,) = page.items
    assert trade.price == r.fills[0].price and str(trade.price) == "43210.13345678"
    assert trade.quote_qty == r.fills[0].price * r.fills[0].qty
    assert isinstance(trade.commission, Decimal) and trade.commission == Decimal("0.00000123")
    (order,) = (await history.orders(engine, history.Filters())).items
    assert order.cumulative_quote == r.cumulative_quote
    assert order.avg_price == r.avg_price  # 28 significant digits survive


async def test_migrating_again_changes_nothing(engine: AsyncEngine) -> None:
    assert await current_version(engine) == max(v for v, _n, _f in MIGRATIONS)
    assert await migrate(engine) == 1
    async with engine.connect() as conn:
        rows = (await conn.execute(select(schema.schema_migrations))).all()
    assert [r.version for r in rows] == [1]


async def test_a_failed_migration_leaves_the_database_unchanged(database_url: str) -> None:
    def create_then_fail(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_done (x INTEGER)"))
        conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

    engine = create_engine(database_url)
    try:
        await migrate(engine)
        broken = (*MIGRATIONS, (2, "broken", create_then_fail))
        with pytest.raises(MigrationError, match=r"migration 2 \(broken\) failed"):
            await migrate(engine, broken)
        assert await current_version(engine) == 1
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert "half_done" not in tables
        assert "fills" in tables
    finally:
        await engine.dispose()


async def test_a_year_of_fills_is_written_and_read_back_page_by_page(engine: AsyncEngine) -> None:
    """365 days x 48 fills (one each half hour) over two bots and two symbols."""
    writer = LedgerWriter(engine)
    day_ms, per_day = 86_400_000, 48
    written = []
    n = 0
    for day in range(365):
        batch = Batch()
        for k in range(per_day):
            n += 1
            r = report(
                n,
                bot=("bot-a", "bot-b")[n % 2],
                symbol=("BTCUSDT", "ETHUSDT")[(n // 2) % 2],
                ts=T0 + day * day_ms + k * (day_ms // per_day),
            )
            batch.add_report(r, f"{n}-0")
            written.append(r)
        await writer.write(batch)
    assert await count(engine, schema.fills) == 365 * per_day

    seen = []
    cursor = None
    while True:
        page = await history.trades(engine, history.Filters(), cursor, limit=5000)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(written)
    by_key = {(t.symbol, t.trade_id): t for t in seen}
    for r in written:
        got = by_key[(r.symbol, r.fills[0].trade_id)]
        assert (got.price, got.qty, got.commission, got.ts, got.bot_id, got.side) == (
            r.fills[0].price,
            r.fills[0].qty,
            r.fills[0].commission,
            r.ts,
            r.bot_id,
            r.side.value,
        )

    # A filtered time range: one bot's sells on one symbol in March 2024.
    start, end = 1_709_251_200_000, 1_711_929_600_000
    want = [
        r
        for r in written
        if r.bot_id == "bot-a"
        and r.symbol == "ETHUSDT"
        and r.side is Side.SELL
        and start <= r.ts < end
    ]
    filters = history.Filters(
        bot_id="bot-a", symbol="ETHUSDT", side="SELL", start_ms=start, end_ms=end
    )
    page = await history.trades(engine, filters, limit=5000)
    assert sorted(t.intent_id for t in page.items) == sorted(r.intent_id for r in want)


async def test_pages_do_not_shift_when_rows_arrive_between_them(engine: AsyncEngine) -> None:
    writer = LedgerWriter(engine)
    batch = Batch()
    for n in range(25):
        batch.add_report(report(n), f"{n}-0")
    await writer.write(batch)
    first = await history.trades(engine, history.Filters(), None, limit=10)
    later = Batch()
    for n in range(25, 30):
        later.add_report(report(n), f"{n}-0")
    await writer.write(later)
    second = await history.trades(engine, history.Filters(), first.next_cursor, limit=10)
    third = await history.trades(engine, history.Filters(), second.next_cursor, limit=10)
    ids = [t.id for t in (*first.items, *second.items, *third.items)]
    assert len(ids) == 25 == len(set(ids))
    assert third.next_cursor is None
