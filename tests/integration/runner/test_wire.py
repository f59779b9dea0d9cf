"""The runner's own wire against a real redis-server: the blocking XREAD over many
streams, packed in C and parsed into (stream, [(id, fields)])."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.runner.wire import Lanes, read_streams


async def blocked(redis: Any) -> None:
    """Wait until the reader's XREAD is blocked in Redis (so a later XADD is what wakes
    it, not something its ``$`` already counted)."""
    deadline = time.monotonic() + 5
    while (await redis.info("clients"))["blocked_clients"] < 1:
        assert time.monotonic() < deadline, "the XREAD never blocked"
        await asyncio.sleep(0.01)


@pytest.fixture
async def lanes(redis: Any) -> AsyncIterator[Lanes]:
    own = Lanes(redis)
    yield own
    await own.close()


async def test_reads_each_stream_after_its_own_last_id(redis: Any, lanes: Lanes) -> None:
    a1 = await redis.xadd("s:a", {"type": "candle", "data": "1"})
    a2 = await redis.xadd("s:a", {"type": "candle", "data": "2"})
    b1 = await redis.xadd("s:b", {"type": "tick", "data": "x"})
    got = await read_streams(lanes, {"s:a": a1.decode(), "s:b": "0-0", "s:c": "0-0"}, 10, 100)
    assert got == [
        ("s:a", [(a2, {b"type": b"candle", b"data": b"2"})]),
        ("s:b", [(b1, {b"type": b"tick", b"data": b"x"})]),
    ]
    assert lanes.idle and not lanes.busy  # the connection is reused


async def test_blocks_until_an_entry_comes_and_gives_nothing_after_the_block(
    redis: Any, lanes: Lanes
) -> None:
    start = time.monotonic()
    assert await read_streams(lanes, {"s:quiet": "$"}, 10, 150) == []
    assert time.monotonic() - start >= 0.14
    reader = asyncio.create_task(read_streams(lanes, {"s:late": "$"}, 10, 5000))
    await blocked(redis)
    entry_id = await redis.xadd("s:late", {"type": "candle", "data": "3"})
    assert await asyncio.wait_for(reader, 2) == [
        ("s:late", [(entry_id, {b"type": b"candle", b"data": b"3"})])
    ]


async def test_a_read_cancelled_while_blocked_leaves_no_half_read_connection(
    redis: Any, lanes: Lanes
) -> None:
    reader = asyncio.create_task(read_streams(lanes, {"s:never": "$"}, 10, 5000))
    await blocked(redis)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert not lanes.idle and not lanes.busy  # closed, not given back mid-reply
    entry_id = await redis.xadd("s:after", {"type": "tick", "data": "y"})
    assert await read_streams(lanes, {"s:after": "0-0"}, 10, 100) == [
        ("s:after", [(entry_id, {b"type": b"tick", b"data": b"y"})])
    ]
