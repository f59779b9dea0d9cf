"""The trade ledger's SQL schema (SQLAlchemy Core), shared by its writer
(``services/ledger``) and its readers (the API's history routes, the CLI).

One schema for PostgreSQL and SQLite. Money is :class:`Money`: ``NUMERIC`` on
PostgreSQL (exact, unconstrained scale) and ``TEXT`` on SQLite (whose NUMERIC affinity
would turn a price into a double); either way a ``Decimal`` goes in and comes out.
Times are epoch milliseconds (``BIGINT``). Every table is append-only and carries a
unique key derived from the exchange's or the bot's own ids, so a redelivered or
replayed report inserts nothing twice (``ON CONFLICT DO NOTHING``); the one exception is
``equity_snapshots``, one row per bot and UTC day holding that day's latest figures.

The DDL of each version is frozen in ``services/ledger/migrations.py``; this module is
the latest shape the code reads and writes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator, TypeEngine


class Money(TypeDecorator[Decimal]):
    """Exact decimal: NUMERIC on PostgreSQL, TEXT elsewhere; never a float."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, not {type(value).__name__}")
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


# A surrogate key that autoincrements on both engines (SQLite only for INTEGER PRIMARY KEY).
RowId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", BigInteger, nullable=False),
)

# One row per intent that ended: the final execution report.
orders = Table(
    "orders",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("intent_id", String(128), nullable=False, unique=True),
    Column("client_order_id", String(36), nullable=False),
    Column("bot_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("status", String(20), nullable=False),
    Column("executed_qty", Money, nullable=False),
    Column("cumulative_quote", Money, nullable=False),
    Column("avg_price", Money, nullable=False),
    Column("commission", Money, nullable=False),
    Column("commission_asset", Text, nullable=False),
    Column("exchange_order_id", BigInteger, nullable=True),
    Column("reason", Text, nullable=False),
    Column("mode", String(8), nullable=False),
    Column("is_exit", Boolean, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("stream_id", String(41), nullable=False),
    Index("ix_orders_bot_id", "bot_id", "id"),
    Index("ix_orders_symbol_id", "symbol", "id"),
    Index("ix_orders_ts", "ts"),
)

# One row per exchange trade (a fill). ``fill_key`` is ``{mode}:{symbol}:{trade_id}``
# when the exchange gave a trade id, else ``{intent_id}#{n}`` (paper fills).
fills = Table(
    "fills",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("fill_key", String(200), nullable=False, unique=True),
    Column("intent_id", String(128), nullable=False),
    Column("client_order_id", String(36), nullable=False),
    Column("bot_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("trade_id", BigInteger, nullable=False),
    Column("exchange_order_id", BigInteger, nullable=True),
    Column("price", Money, nullable=False),
    Column("qty", Money, nullable=False),
    Column("quote_qty", Money, nullable=False),
    Column("commission", Money, nullable=False),
    Column("commission_asset", Text, nullable=False),
    Column("is_exit", Boolean, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Index("ix_fills_bot_id", "bot_id", "id"),
    Index("ix_fills_symbol_id", "symbol", "id"),
    Index("ix_fills_ts", "ts"),
)

# One row per closed round trip (the runner's ``bot:{id}:trades``).
round_trips = Table(
    "round_trips",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("trip_key", String(200), nullable=False, unique=True),
    Column("bot_id", String(64), nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=False),
    Column("qty", Money, nullable=False),
    Column("entry_price", Money, nullable=False),
    Column("exit_price", Money, nullable=False),
    Column("cost", Money, nullable=False),
    Column("proceeds", Money, nullable=False),
    Column("fees", Money, nullable=False),
    Column("pnl", Money, nullable=False),
    Column("pnl_pct", Money, nullable=False),
    Column("exit_reason", Text, nullable=False),
    Column("dust", Money, nullable=False),
    Index("ix_round_trips_bot_id", "bot_id", "id"),
)

# Each configuration a bot had: version n+1 is written when the config differs from
# version n; two ledgers racing on the same change collide on (bot_id, version).
bot_configs = Table(
    "bot_configs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("bot_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("config", Text, nullable=False),
    Column("seen_at", BigInteger, nullable=False),
    UniqueConstraint("bot_id", "version", name="uq_bot_configs_version"),
)

# One row per bot and UTC day: the latest equity figures seen that day.
equity_snapshots = Table(
    "equity_snapshots",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("bot_id", String(64), nullable=False),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD, UTC
    Column("equity", Money, nullable=False),
    Column("realized_pnl", Money, nullable=False),
    Column("total_pnl", Money, nullable=False),
    Column("fees", Money, nullable=False),
    Column("trades", BigInteger, nullable=False),
    Column("taken_at", BigInteger, nullable=False),
    UniqueConstraint("bot_id", "day", name="uq_equity_snapshots_day"),
)
