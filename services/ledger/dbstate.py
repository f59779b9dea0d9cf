"""Whether the ledger's database answers, as its health key and ``stream:events`` say.

Every loop that touches the database reports here (``await db.ok()`` after a success,
``await db.down(exc)`` after an unreachable-database error); the first failure after a
success and the first success after failures each put one event on ``stream:events``
for people, however many loops noticed.
"""

from __future__ import annotations

from typing import Any

from shared.logging import get_logger
from shared.messages import Event
from shared.redis import REDIS_ERRORS, now_ms
from shared.streams import emit_event

log = get_logger(__name__)

SERVICE = "ledger"


class DbState:
    def __init__(self, redis: Any = None, instance: str = "") -> None:
        self.redis = redis  # None: no events (tests of one loop)
        self.instance = instance
        self.state = "connecting"  # connecting | ok | unreachable
        self.error = ""
        self.since = 0  # epoch ms of the last change of state
        self.retries = 0

    async def ok(self) -> None:
        if self.state == "ok":
            return
        was, retries = self.state, self.retries
        self.state, self.error, self.since, self.retries = "ok", "", now_ms(), 0
        log.info("ledger.db_ok", after_retries=retries)
        if was == "unreachable":
            await self._event(
                "ledger.db_ok", "info", f"ledger database reachable again after {retries} retries"
            )

    async def down(self, exc: BaseException) -> None:
        first = self.state != "unreachable"
        if first:
            self.since = now_ms()
        self.state, self.error = "unreachable", f"{type(exc).__name__}: {exc}"[:300]
        self.retries += 1
        if first:
            await self._event(
                "ledger.db_unreachable",
                "warning",
                f"ledger database unreachable: {self.error}; writes wait, none lost",
            )

    async def _event(self, kind: str, level: str, message: str) -> None:
        if self.redis is None:
            return
        try:
            await emit_event(
                self.redis,
                Event(kind=kind, message=message, level=level, service=SERVICE, ts=now_ms(),
                      details={"instance": self.instance}),
            )  # fmt: skip
        except REDIS_ERRORS as exc:  # the event is for people; the loops go on
            log.warning("ledger.event_failed", kind=kind, error=str(exc))
