"""Opening the ledger's database: one URL names PostgreSQL (asyncpg) or SQLite
(aiosqlite), and which failures mean "the database is unreachable, retry" rather than
"this row is wrong".
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# The embedded default (``make run``): a SQLite file in the data directory. One constant,
# read by the ledger (writer) and the API (reader) alike.
DEFAULT_DATABASE_URL = "sqlite:///.botfleet/ledger.db"

# The database is away (refused, reset, restarting, timed out): nothing is wrong with
# the data, so the writer keeps its batch and retries with backoff.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached (retry), not that a row is bad."""
    if isinstance(exc, UNREACHABLE_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def async_url(url: str) -> str:
    """The SQLAlchemy async URL of ``url``: ``postgresql://`` gets asyncpg and
    ``sqlite:///`` aiosqlite; an explicit driver is kept."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ValueError("the ledger database URL must start with postgresql:// or sqlite:///")


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    full = async_url(url)
    if not full.startswith("sqlite+aiosqlite:///"):
        return None
    path = full.removeprefix("sqlite+aiosqlite:///").split("?", 1)[0]
    return path if path and path != ":memory:" else None


def create_engine(url: str, *, timeout_s: float = 10.0, pool_size: int = 5) -> AsyncEngine:
    """An engine for ``url``. SQLite runs in WAL mode with a busy timeout, so readers
    (the API) never block the writer and two ledger processes take turns."""
    full = async_url(url)
    if full.startswith("sqlite"):
        engine = create_async_engine(full, connect_args={"timeout": timeout_s})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Python's sqlite3 opens no transaction before DDL: take BEGIN over (below),
            # so a migration that fails rolls back whole, as on PostgreSQL.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    return create_async_engine(
        full,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={"timeout": timeout_s, "command_timeout": timeout_s * 3},
    )
