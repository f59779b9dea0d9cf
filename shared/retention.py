"""Retention of a stream that consumer groups read (DESIGN "Traps"): ``XADD ... MAXLEN``
and ``XTRIM MAXLEN`` delete entries even while a group has them pending, and Redis 7.0
has no acknowledged-only trimming. So a stream with groups is trimmed with
``XTRIM MINID`` below the oldest entry any group still needs — its oldest pending entry,
or, with none pending, its last delivered one — and never within the last ``keep_ms``
(readers without a group, the runners looking for their reports with XREAD, need the
recent entries whatever the groups acknowledged). A stream without any group is capped
at ``maxlen`` as before.

The producer that owns the stream runs :func:`retention_loop` (the gateway, for
``stream:executions`` and its ``ledger`` group); its XADDs no longer trim. A group that
is never read again (a ledger retired for good) holds the stream: destroy it
(``XGROUP DESTROY``) and the cap applies again.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from shared.binance.backoff import backoff_delays
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS, now_ms

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Trim:
    """What one pass did: ``maxlen`` (no group), ``minid`` (below ``floor``) or ``none``."""

    how: str
    floor: str = ""
    deleted: int = 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def group_floor(redis: Any, stream: str, groups: list[dict[Any, Any]]) -> str:
    """The oldest entry id any of ``groups`` still needs ("0-0": one has read nothing)."""
    floor: str | None = None
    for group in groups:
        name = _text(group.get("name"))
        needed = _text(group.get("last-delivered-id"))
        if int(group.get("pending", 0) or 0) > 0:
            summary = await redis.xpending(stream, name)
            if summary and summary.get("min"):
                needed = min(needed, _text(summary["min"]), key=id_key)
        floor = needed if floor is None else min(floor, needed, key=id_key)
    return floor or "0-0"


async def trim_stream(
    redis: Any,
    stream: str,
    *,
    maxlen: int,
    keep_ms: int,
    now: int | None = None,
    approximate: bool = True,
) -> Trim:
    """One retention pass over ``stream`` (see the module docstring)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return Trim("none")
    if not groups:
        deleted = await redis.xtrim(stream, maxlen=maxlen, approximate=approximate)
        return Trim("maxlen", deleted=int(deleted or 0))
    floor = await group_floor(redis, stream, groups)
    recent = f"{max(0, (now if now is not None else now_ms()) - keep_ms)}-0"
    floor = min(floor, recent, key=id_key)
    if floor == "0-0":
        return Trim("none", floor)
    deleted = await redis.xtrim(stream, minid=floor, approximate=approximate)
    return Trim("minid", floor, int(deleted or 0))


async def retention_loop(
    redis: Any, stream: str, *, maxlen: int, keep_ms: int, interval_s: float = 10.0
) -> None:
    """:func:`trim_stream` every ``interval_s`` until cancelled; Redis errors back off."""
    delays = backoff_delays(0.5, 30.0, random.Random())
    while True:
        try:
            done = await trim_stream(redis, stream, maxlen=maxlen, keep_ms=keep_ms)
            if done.deleted:
                log.debug("stream.trimmed", stream=stream, how=done.how, floor=done.floor,
                          deleted=done.deleted)  # fmt: skip
            delays = backoff_delays(0.5, 30.0, random.Random())
            await asyncio.sleep(interval_s)
        except (*REDIS_ERRORS, ResponseError) as exc:
            delay = next(delays)
            log.warning(
                "stream.trim_failed", stream=stream, error=str(exc), retry_in=round(delay, 3)
            )
            await asyncio.sleep(delay)
