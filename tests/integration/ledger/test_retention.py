"""Retention of ``stream:executions`` on a real Redis: with the ledger's group, nothing
it has not acknowledged is ever trimmed, nor anything recent; without a group the cap
applies as before."""

from __future__ import annotations

from typing import Any

from shared import keys
from shared.retention import trim_stream
from shared.streams import ensure_group
from tests.integration.ledger.helpers import publish, report

STREAM = keys.EXECUTIONS


async def ids(redis: Any) -> list[str]:
    return [i.decode() for i, _ in await redis.xrange(STREAM)]


async def test_without_a_group_the_stream_is_capped_at_maxlen(redis: Any) -> None:
    await publish(redis, [report(n) for n in range(300)])
    done = await trim_stream(redis, STREAM, maxlen=100, keep_ms=0, approximate=False)
    assert done.how == "maxlen" and await redis.xlen(STREAM) == 100


async def test_entries_the_ledger_has_not_acknowledged_are_never_trimmed(redis: Any) -> None:
    written = await publish(redis, [report(n) for n in range(1000)])
    await ensure_group(redis, STREAM, keys.LEDGER_GROUP)
    reply = await redis.xreadgroup(keys.LEDGER_GROUP, "l1", {STREAM: ">"}, count=600)
    read = [i for i, _ in reply[0][1]]
    await redis.xack(STREAM, keys.LEDGER_GROUP, *read[:400])  # 200 still pending

    far_future = 2**62
    done = await trim_stream(redis, STREAM, maxlen=10, keep_ms=0, now=far_future, approximate=False)
    assert done.how == "minid" and done.floor == written[400]
    assert await ids(redis) == written[400:]  # the pending 200 and the 400 never read

    await redis.xack(STREAM, keys.LEDGER_GROUP, *read[400:])
    await trim_stream(redis, STREAM, maxlen=10, keep_ms=0, now=far_future, approximate=False)
    assert await ids(redis) == written[599:]  # up to the last delivered one


async def test_a_group_that_read_nothing_holds_every_entry(redis: Any) -> None:
    await publish(redis, [report(n) for n in range(50)])
    await ensure_group(redis, STREAM, keys.LEDGER_GROUP)
    done = await trim_stream(redis, STREAM, maxlen=10, keep_ms=0, approximate=False)
    assert done.how == "none" and await redis.xlen(STREAM) == 50


async def test_recent_entries_stay_for_readers_without_a_group(redis: Any) -> None:
    written = await publish(redis, [report(n) for n in range(100)])
    await ensure_group(redis, STREAM, keys.LEDGER_GROUP)
    reply = await redis.xreadgroup(keys.LEDGER_GROUP, "l1", {STREAM: ">"}, count=100)
    await redis.xack(STREAM, keys.LEDGER_GROUP, *[i for i, _ in reply[0][1]])
    # every entry acknowledged, but all of them younger than the window
    done = await trim_stream(redis, STREAM, maxlen=10, keep_ms=3_600_000, approximate=False)
    assert done.deleted == 0 and await ids(redis) == written
