"""Versioned migrations of the ledger's database, applied at start.

Each migration is a numbered function run inside ONE transaction together with the
``schema_migrations`` row that records it, so a migration that fails leaves the
database exactly as it was and :class:`MigrationError` says which one and why (both
PostgreSQL and SQLite roll DDL back; ``shared.ledger.engine`` makes SQLite's BEGIN
explicit). Several ledgers starting at once take turns: PostgreSQL through an advisory
transaction lock, SQLite through its write lock.

A change of schema adds a function here (never edits an applied one) and updates
``shared/ledger/schema.py`` to the new shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.ledger import schema
from shared.ledger.engine import is_unreachable
from shared.logging import get_logger
from shared.redis import now_ms

log = get_logger(__name__)

# Any constant shared by every ledger: the key of the PostgreSQL advisory lock.
_ADVISORY_LOCK = 0x6C6564676572  # "ledger"


class MigrationError(Exception):
    """A migration failed; the database is unchanged. The message says which and why."""


def _v1_initial(conn: Connection) -> None:
    """Orders, fills, round trips, bot configurations, daily equity snapshots."""
    for table in (
        schema.orders,
        schema.fills,
        schema.round_trips,
        schema.bot_configs,
        schema.equity_snapshots,
    ):
        table.create(conn)


Migration = tuple[int, str, Callable[[Connection], None]]

MIGRATIONS: tuple[Migration, ...] = ((1, "initial", _v1_initial),)


def latest_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    return max(v for v, _n, _f in migrations)


def _applied(conn: Connection) -> set[int]:
    schema.schema_migrations.create(conn, checkfirst=True)
    return set(conn.execute(select(schema.schema_migrations.c.version)).scalars())


def _apply_one(
    conn: Connection, version: int, name: str, step: Callable[[Connection], None]
) -> bool:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
    if version in _applied(conn):
        return False  # another ledger applied it while this one waited
    step(conn)
    conn.execute(
        schema.schema_migrations.insert().values(version=version, name=name, applied_at=now_ms())
    )
    return True


async def migrate(engine: AsyncEngine, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply every migration not applied yet, in order, each in its own transaction;
    returns the version the database is at. Unreachable-database errors propagate (the
    caller retries); any other failure raises :class:`MigrationError`."""
    for version, name, step in sorted(migrations, key=lambda m: m[0]):
        try:
            async with engine.begin() as conn:
                done = await conn.run_sync(_apply_one, version, name, step)
        except DBAPIError as exc:
            if is_unreachable(exc) and not _is_schema_error(exc):
                raise
            raise MigrationError(
                f"migration {version} ({name}) failed and was rolled back: {exc.orig!r}"
            ) from exc
        if done:
            log.info("ledger.migrated", version=version, name=name)
    return await current_version(engine)


def _is_schema_error(exc: DBAPIError) -> bool:
    """SQLite reports a bad statement ("table ... already exists", "no such table") as an
    OperationalError, which is otherwise an unreachable-database error."""
    message = str(exc.orig).lower()
    return any(mark in message for mark in ("already exists", "no such", "syntax error"))


async def current_version(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        versions: Any = await conn.run_sync(_applied)
    return max(versions, default=0)
