"""The verdict on one service instance from its heartbeat hash (``health:{service}:{instance}``):
the one rule the API's health report and ``botfleet health --service`` both apply.

The heartbeat's ``ts`` is written by a task of its own, so it proves the process and its
event loop live, not that the service's work goes on: a main loop stuck on an await it
never leaves beats on. A service whose main loop reports its last pass in the
heartbeat's ``loop_at`` (epoch ms) is judged on that too: no pass for
:data:`LOOP_STALL_MS` is a stalled loop. ``ok`` = ``0`` in the figures is the service's
own word that it cannot work (e.g. the gateway's exchange refused its key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# A heartbeat (written every second, TTL 5 s) older than this is dead.
HEARTBEAT_MAX_AGE_MS = 15_000
# Ten heartbeat intervals without a pass of the main loop (whose reads block 0.5 s at most).
LOOP_STALL_MS = 10_000
LOOP_FIELD = "loop_at"


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class Verdict:
    alive: bool  # the heartbeat is fresh
    age_ms: int
    loop_age_ms: int | None  # None: the instance does not report its main loop
    loop_stalled: bool
    ok: bool  # the figures' ``ok`` is not 0

    @property
    def healthy(self) -> bool:
        return self.alive and self.ok and not self.loop_stalled

    def reason(self) -> str:
        """What is wrong ("" when healthy)."""
        if not self.alive:
            return f"no heartbeat for {self.age_ms} ms"
        if self.loop_stalled:
            return f"main loop has not progressed for {self.loop_age_ms} ms"
        if not self.ok:
            return "the service reports ok=0"
        return ""


def judge(beat: Mapping[str, str], now: int) -> Verdict:
    """The verdict on a heartbeat hash read at local time ``now`` (epoch ms)."""
    age = now - _int(beat.get("ts"))
    loop_at = beat.get(LOOP_FIELD)
    loop_age = now - _int(loop_at) if loop_at and loop_at != "0" else None
    if loop_at == "0":  # reported, but the loop never completed a pass
        loop_age = now - _int(beat.get("started_at"))
    return Verdict(
        alive=age <= HEARTBEAT_MAX_AGE_MS,
        age_ms=age,
        loop_age_ms=loop_age,
        loop_stalled=loop_age is not None and loop_age > LOOP_STALL_MS,
        ok=beat.get("ok") != "0",
    )
