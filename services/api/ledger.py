"""The API's read-only handle on the trade ledger's database (``shared.ledger``).

The engine is opened on first use, so an API started before the ledger (or without
one) serves everything else. An embedded ledger with no file yet has recorded nothing:
its history is empty. A ledger that cannot be read answers 503 with the reason
("database unreachable", "not migrated yet"), never 500.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.errors import Unavailable
from shared.ledger.engine import create_engine, is_unreachable, sqlite_path
from shared.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")


class LedgerReader:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None

    def absent(self) -> bool:
        """True while the embedded (SQLite) ledger has no file yet: nothing was recorded,
        so the history is empty (opening it would create an empty file instead)."""
        path = sqlite_path(self.url)
        return path is not None and not os.path.exists(path)

    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_engine(self.url, timeout_s=5.0)
        return self._engine

    async def read(self, query: Callable[[AsyncEngine], Awaitable[T]], empty: T) -> T:
        """Run ``query`` on the ledger (``empty`` while there is no ledger database yet);
        database trouble becomes a 503 with the reason."""
        if self.absent():
            return empty
        try:
            return await query(self.engine())
        except DBAPIError as exc:
            if is_unreachable(exc) and "no such table" not in str(exc.orig):
                log.warning("api.ledger_unreachable", error=type(exc.orig).__name__)
                raise Unavailable("ledger database unreachable") from exc
            if "no such table" in str(exc.orig) or "does not exist" in str(exc.orig):
                raise Unavailable("the ledger database is not migrated yet") from exc
            raise
        except OSError as exc:
            raise Unavailable("ledger database unreachable") from exc

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
