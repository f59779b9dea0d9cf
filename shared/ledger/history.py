"""Reading the ledger: fills ("trades"), orders, round trips and equity history with
filters (bot, symbol, side, time range), cursor pagination and CSV, for the API and
the CLI. Read-only; the writer is ``services/ledger``.

Pages are newest first by the row's ledger id (the order rows were recorded in, which
is the stream's order). The cursor is the last id of a page; the next page holds the
rows below it, so rows written meanwhile never shift a page (unlike an offset).
Every query is served by an index ``(bot_id, id)``, ``(symbol, id)`` or ``(ts)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.ledger import schema

MAX_PAGE = 5000
_INT64_MAX = 2**63 - 1  # ids are BIGINT


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One fill: a trade on the exchange."""

    id: int
    ts: int
    bot_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: int
    exchange_order_id: int | None
    client_order_id: str
    intent_id: str
    mode: str
    is_exit: bool


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """One intent's final report."""

    id: int
    ts: int
    bot_id: str
    symbol: str
    side: str
    status: str
    executed_qty: Decimal
    cumulative_quote: Decimal
    avg_price: Decimal
    commission: Decimal
    commission_asset: str
    exchange_order_id: int | None
    client_order_id: str
    intent_id: str
    mode: str
    is_exit: bool
    reason: str


class RoundTrip(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    bot_id: str
    symbol: str
    opened_at: int
    closed_at: int
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    cost: Decimal
    proceeds: Decimal
    fees: Decimal
    pnl: Decimal
    pnl_pct: Decimal
    exit_reason: str


class EquityPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A UTC day's equity of one bot, or of every bot together (``bot_id`` empty)."""

    day: str
    equity: Decimal
    realized_pnl: Decimal
    total_pnl: Decimal
    fees: Decimal
    trades: int
    bots: int = 1


class Filters(msgspec.Struct, frozen=True, kw_only=True):
    bot_id: str | None = None
    symbol: str | None = None
    side: str | None = None
    start_ms: int | None = None  # inclusive
    end_ms: int | None = None  # exclusive


class Page(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Any]
    next_cursor: str | None  # None: no more rows


def parse_cursor(cursor: str | None) -> int | None:
    """The id a cursor stands for; ValueError when it is not one of ours."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or int(cursor) > _INT64_MAX:
        raise ValueError(f"invalid cursor {cursor[:40]!r}")
    return int(cursor)


def _filtered(table: Table, filters: Filters, time_col: str) -> Select[Any]:
    query = select(table)
    c = table.c
    if filters.bot_id is not None:
        query = query.where(c.bot_id == filters.bot_id)
    if filters.symbol is not None:
        query = query.where(c.symbol == filters.symbol)
    if filters.side is not None and "side" in c:
        query = query.where(c.side == filters.side)
    if filters.start_ms is not None:
        query = query.where(c[time_col] >= filters.start_ms)
    if filters.end_ms is not None:
        query = query.where(c[time_col] < filters.end_ms)
    return query


async def _page(
    engine: AsyncEngine,
    table: Table,
    struct: type[Any],
    filters: Filters,
    cursor: str | None,
    limit: int,
    time_col: str = "ts",
) -> Page:
    limit = max(1, min(limit, MAX_PAGE))
    query = _filtered(table, filters, time_col)
    below = parse_cursor(cursor)
    if below is not None:
        query = query.where(table.c.id < below)
    query = query.order_by(table.c.id.desc()).limit(limit + 1)
    fields = struct.__struct_fields__
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    items = [struct(**{f: row[f] for f in fields}) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items=items, next_cursor=str(items[-1].id) if more and items else None)


async def trades(
    engine: AsyncEngine, filters: Filters, cursor: str | None = None, limit: int = 100
) -> Page:
    return await _page(engine, schema.fills, Trade, filters, cursor, limit)


async def orders(
    engine: AsyncEngine, filters: Filters, cursor: str | None = None, limit: int = 100
) -> Page:
    return await _page(engine, schema.orders, Order, filters, cursor, limit)


async def round_trips(
    engine: AsyncEngine, filters: Filters, cursor: str | None = None, limit: int = 100
) -> Page:
    return await _page(engine, schema.round_trips, RoundTrip, filters, cursor, limit, "closed_at")


async def equity(
    engine: AsyncEngine,
    bot_id: str | None,
    start_day: str | None = None,
    end_day: str | None = None,
) -> list[EquityPoint]:
    """Daily equity of one bot, or of the portfolio (the sum over bots) when ``bot_id``
    is None; oldest first. Days are ``YYYY-MM-DD`` (UTC), both ends inclusive."""
    t = schema.equity_snapshots
    if bot_id is not None:
        query: Select[Any] = select(
            t.c.day, t.c.equity, t.c.realized_pnl, t.c.total_pnl, t.c.fees, t.c.trades
        ).where(t.c.bot_id == bot_id)
    else:
        # The Money columns are TEXT on SQLite: summed exactly in Python, not in SQL.
        query = select(t.c.day, t.c.equity, t.c.realized_pnl, t.c.total_pnl, t.c.fees, t.c.trades)
    if start_day is not None:
        query = query.where(t.c.day >= start_day)
    if end_day is not None:
        query = query.where(t.c.day <= end_day)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(t.c.day))).all()
    if bot_id is not None:
        return [
            EquityPoint(
                day=r.day,
                equity=r.equity,
                realized_pnl=r.realized_pnl,
                total_pnl=r.total_pnl,
                fees=r.fees,
                trades=r.trades,
            )
            for r in rows
        ]
    days: dict[str, list[Any]] = {}
    for r in rows:
        acc = days.setdefault(r.day, [Decimal(0), Decimal(0), Decimal(0), Decimal(0), 0, 0])
        acc[0] += r.equity
        acc[1] += r.realized_pnl
        acc[2] += r.total_pnl
        acc[3] += r.fees
        acc[4] += r.trades
        acc[5] += 1
    return [
        EquityPoint(
            day=day,
            equity=a[0],
            realized_pnl=a[1],
            total_pnl=a[2],
            fees=a[3],
            trades=a[4],
            bots=a[5],
        )
        for day, a in days.items()
    ]


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


def csv_header(struct: type[Any]) -> str:
    return _csv_line(struct.__struct_fields__)


def csv_rows(items: Iterable[Any]) -> str:
    """Rows as CSV lines (the header is :func:`csv_header`); money as exact decimals."""
    out = []
    for item in items:
        out.append(_csv_line([_cell(getattr(item, f)) for f in item.__struct_fields__]))
    return "".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_line(cells: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
