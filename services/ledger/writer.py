"""Rows of the ledger and the one way they are written: a batch in one transaction,
``INSERT ... ON CONFLICT DO NOTHING`` on each table's unique key.

Pure part: :func:`report_rows` turns an :class:`ExecutionReport` into its order row
(final reports only: one per intent) and its fill rows; :func:`trip_row`,
:func:`config_row` and :func:`equity_row` do the same for what the runner keeps in
Redis. Writing part: :class:`LedgerWriter`. Nothing here acknowledges anything; the
caller acknowledges stream entries only after :meth:`LedgerWriter.write` returned,
i.e. after the commit.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.ledger import schema
from shared.messages import ExecutionReport

Row = dict[str, Any]
ZERO = Decimal(0)


def fill_key(report: ExecutionReport, index: int, trade_id: int) -> str:
    """The fill's unique key: the exchange's trade id when there is one (unique per
    symbol on Binance), else the intent id and the fill's place in the report."""
    if trade_id > 0:
        return f"{report.mode}:{report.symbol}:{trade_id}"
    return f"{report.intent_id}#{index}"


def report_rows(report: ExecutionReport, stream_id: str) -> tuple[Row | None, list[Row]]:
    """The order row (None unless the report is final) and the fill rows of a report."""
    order: Row | None = None
    if report.final:
        order = {
            "intent_id": report.intent_id,
            "client_order_id": report.client_order_id,
            "bot_id": report.bot_id,
            "symbol": report.symbol,
            "side": report.side.value,
            "status": report.status.value,
            "executed_qty": report.executed_qty,
            "cumulative_quote": report.cumulative_quote,
            "avg_price": report.avg_price,
            "commission": report.commission,
            "commission_asset": report.commission_asset,
            "exchange_order_id": report.exchange_order_id,
            "reason": report.reason,
            "mode": report.mode,
            "is_exit": report.is_exit,
            "epoch": report.epoch,
            "ts": report.ts,
            "stream_id": stream_id,
        }
    fills = [
        {
            "fill_key": fill_key(report, n, f.trade_id),
            "intent_id": report.intent_id,
            "client_order_id": report.client_order_id,
            "bot_id": report.bot_id,
            "symbol": report.symbol,
            "side": report.side.value,
            "mode": report.mode,
            "trade_id": f.trade_id,
            "exchange_order_id": report.exchange_order_id,
            "price": f.price,
            "qty": f.qty,
            "quote_qty": f.price * f.qty,
            "commission": f.commission,
            "commission_asset": f.commission_asset,
            "is_exit": report.is_exit,
            "ts": report.ts,
        }
        for n, f in enumerate(report.fills)
    ]
    return order, fills


_TRIP_MONEY = ("qty", "entry_price", "exit_price", "cost", "proceeds", "fees", "pnl", "pnl_pct")


def trip_row(bot_id: str, fields: Mapping[str, str]) -> Row:
    """A round trip as the runner wrote it to ``bot:{id}:trades`` (every value a string);
    raises ValueError on a field that is missing or not a number."""
    try:
        opened_at, closed_at = int(fields["opened_at"]), int(fields["closed_at"])
        row: Row = {k: _money(fields[k]) for k in _TRIP_MONEY}
        symbol = fields["symbol"]
    except (KeyError, ArithmeticError) as exc:
        raise ValueError(f"round trip of {bot_id} is malformed: {exc!r}") from exc
    row.update(
        trip_key=f"{bot_id}:{symbol}:{opened_at}:{closed_at}",
        bot_id=bot_id,
        symbol=symbol,
        opened_at=opened_at,
        closed_at=closed_at,
        exit_reason=fields.get("exit_reason", ""),
        dust=_money(fields.get("dust", "0")),
    )
    return row


def _money(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise ArithmeticError(f"{text!r} is not a finite number")
    return value


def config_hash(config: str) -> str:
    return hashlib.sha256(config.encode()).hexdigest()


def equity_row(bot_id: str, stats: Mapping[str, str], now_ms: int) -> Row:
    """The day's equity snapshot of a bot from its ``bot:{id}:stats`` hash."""
    return {
        "bot_id": bot_id,
        "day": time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000)),
        "equity": _money(stats.get("equity", "0") or "0"),
        "realized_pnl": _money(stats.get("realized_pnl", "0") or "0"),
        "total_pnl": _money(stats.get("total_pnl", "0") or "0"),
        "fees": _money(stats.get("fees", "0") or "0"),
        "trades": int(stats.get("trades", "0") or 0),
        "taken_at": now_ms,
    }


# PostgreSQL array type of each column type, for the one-statement batch insert.
_PG_ARRAY = {"Money": "numeric[]", "BigInteger": "int8[]", "Integer": "int4[]",
             "Boolean": "bool[]", "String": "text[]", "Text": "text[]"}  # fmt: skip


@functools.lru_cache(maxsize=16)
def _unnest_sql(table: Table, unique: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    columns = tuple(c.name for c in table.columns if c.name != "id")
    arrays = ", ".join(
        f"${n}::{_PG_ARRAY[type(table.c[name].type).__name__]}"
        for n, name in enumerate(columns, start=1)
    )
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(unique)}) DO NOTHING RETURNING id"
    )
    return sql, columns


async def _put_unnest(
    conn: AsyncConnection, table: Table, unique: Sequence[str], rows: list[Row]
) -> int:
    """PostgreSQL: the whole batch as one INSERT ... SELECT FROM unnest(arrays), one
    round trip and one plan however many rows (an executemany costs a bind per row)."""
    sql, columns = _unnest_sql(table, tuple(unique))
    params = tuple([row[name] for row in rows] for name in columns)
    result = await conn.exec_driver_sql(sql, params)
    return len(result.all())


@dataclass(slots=True)
class Batch:
    """Rows to write together."""

    orders: list[Row] = field(default_factory=list)
    fills: list[Row] = field(default_factory=list)
    trips: list[Row] = field(default_factory=list)

    def add_report(self, report: ExecutionReport, stream_id: str) -> None:
        order, fills = report_rows(report, stream_id)
        if order is not None:
            self.orders.append(order)
        self.fills.extend(fills)

    def __len__(self) -> int:
        return len(self.orders) + len(self.fills) + len(self.trips)


@dataclass(slots=True)
class Written:
    """Rows a write inserted (the rest were there already)."""

    orders: int = 0
    fills: int = 0
    trips: int = 0


class LedgerWriter:
    """Writes batches to the ledger's database (either engine, same statements)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _insert(self, table: Table, unique: Sequence[str]) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(unique))
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(unique))

    async def _put(
        self, conn: AsyncConnection, table: Table, unique: Sequence[str], rows: list[Row]
    ) -> int:
        if not rows:
            return 0
        # Dedupe inside the batch too (a batch may hold a report and its repetition).
        seen: dict[tuple[Any, ...], Row] = {}
        for row in rows:
            seen.setdefault(tuple(row[k] for k in unique), row)
        if self.dialect == "postgresql":
            return await _put_unnest(conn, table, unique, list(seen.values()))
        # RETURNING counts the rows really inserted on both engines (a DBAPI executemany's
        # rowcount is -1 or 0 on asyncpg).
        stmt = self._insert(table, unique).returning(table.c.id)
        result = await conn.execute(stmt, list(seen.values()))
        return len(result.all())

    async def write(self, batch: Batch) -> Written:
        """Insert the batch in one transaction; rows already present are skipped.
        Returns when committed (the caller may acknowledge then)."""
        async with self.engine.begin() as conn:
            return Written(
                orders=await self._put(conn, schema.orders, ("intent_id",), batch.orders),
                fills=await self._put(conn, schema.fills, ("fill_key",), batch.fills),
                trips=await self._put(conn, schema.round_trips, ("trip_key",), batch.trips),
            )

    async def record_config(self, bot_id: str, config: str, now_ms: int) -> bool:
        """Write the bot's config as its next version unless it equals the latest one;
        True when a row was written."""
        digest = config_hash(config)
        t = schema.bot_configs
        async with self.engine.begin() as conn:
            latest = (
                await conn.execute(
                    select(t.c.version, t.c.config_hash)
                    .where(t.c.bot_id == bot_id)
                    .order_by(t.c.version.desc())
                    .limit(1)
                )
            ).first()
            if latest is not None and latest.config_hash == digest:
                return False
            version = (latest.version if latest is not None else 0) + 1
            row = {
                "bot_id": bot_id,
                "version": version,
                "config_hash": digest,
                "config": config,
                "seen_at": now_ms,
            }
            stmt = self._insert(t, ("bot_id", "version")).values(**row).returning(t.c.id)
            return (await conn.execute(stmt)).first() is not None

    async def record_equity(self, rows: list[Row]) -> None:
        """Upsert each bot's snapshot of the day (the latest figures win)."""
        if not rows:
            return
        t = schema.equity_snapshots
        ins: Any = (postgresql if self.dialect == "postgresql" else sqlite).insert(t)
        stmt = ins.on_conflict_do_update(
            index_elements=["bot_id", "day"],
            set_={
                c: ins.excluded[c]
                for c in ("equity", "realized_pnl", "total_pnl", "fees", "trades", "taken_at")
            },
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt, rows)

    async def counts(self) -> dict[str, int]:
        """Rows per table (health, tests)."""
        out: dict[str, int] = {}
        async with self.engine.connect() as conn:
            for name, table in (
                ("orders", schema.orders),
                ("fills", schema.fills),
                ("round_trips", schema.round_trips),
            ):
                out[name] = int(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )
        return out
