"""The API's live feed dead-letters an entry that is not a valid message, with the
reason, and pushes the good one after it (issue 14), against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from decimal import Decimal
from typing import Any

from services.api.feed import FeedHub, FeedItem, Subscription
from shared import keys
from shared.messages import (
    BotCommand,
    CommandAction,
    DeadLetter,
    Event,
    Tick,
    decode,
    encode,
)

NAN_TICK = {"symbol": "BTCUSDT", "price": "NaN", "event_time": 1}
REPORT = {  # every field valid but the empty intent id
    "intent_id": "", "client_order_id": "bf-1", "bot_id": "b", "symbol": "X",
    "side": "BUY", "status": "FILLED", "final": True,
}  # fmt: skip
COMMAND = BotCommand(command_id="c1", bot_id="b", action=CommandAction.START, issued_at=1)
GOOD_TICK = Tick(symbol="BTCUSDT", price=Decimal("50000"), event_time=1)


async def next_event(sub: Subscription, message: str, timeout: float = 10.0) -> FeedItem:
    """The first event item whose message is ``message`` (earlier items are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            item = await sub.get(timeout)
            if item is not None and item.kind == "event" and item.data["message"] == message:
                return item


async def test_a_malformed_entry_is_dead_lettered_and_the_good_one_after_it_is_pushed(
    redis: Any,
) -> None:
    hub = FeedHub(redis, block_ms=50, refresh_s=0.05)
    task = asyncio.create_task(hub.run())
    try:
        async with hub.subscribe() as sub:
            # the hub reads from the moment it starts: probe until it is reading
            async with asyncio.timeout(10):
                while True:
                    await redis.xadd(keys.EVENTS, encode(Event(kind="probe", message="probe")))
                    got = await sub.get(0.2)
                    if got is not None and got.kind == "event":
                        break
            await redis.sadd(keys.MARKET_SUBSCRIPTIONS, "BTCUSDT:1m")
            async with asyncio.timeout(10):  # and until it reads the tick stream too
                while True:
                    await redis.xadd(keys.tick_stream("BTCUSDT"), encode(GOOD_TICK))
                    got = await sub.get(0.5)
                    if got is not None and got.kind == "price":
                        break
            bad = [
                (keys.EVENTS, {"type": "event", "data": b"{not json"}),
                (keys.EVENTS, encode(COMMAND)),  # a valid message the feed does not show
                (keys.EXECUTIONS, {"type": "execution_report", "data": json.dumps(REPORT)}),
                (keys.tick_stream("BTCUSDT"), {"type": "tick", "data": json.dumps(NAN_TICK)}),
            ]
            ids = [await redis.xadd(stream, fields) for stream, fields in bad]
            await redis.xadd(keys.EVENTS, encode(Event(kind="test", message="after the bad")))
            item = await next_event(sub, "after the bad")
            assert item.data["kind"] == "test"
            # the entries of the other streams may come in the same read, after it
            async with asyncio.timeout(10):
                while True:
                    if await redis.xlen(keys.DEAD_LETTER) >= len(bad):
                        break
                    await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    letters = [decode(f) for _i, f in await redis.xrange(keys.DEAD_LETTER)]
    found = {(x.source, x.entry_id): x for x in letters if isinstance(x, DeadLetter)}
    by_entry = [
        found[(stream, entry_id.decode())] for entry_id, (stream, _f) in zip(ids, bad, strict=True)
    ]
    assert all(x.service == "api" and x.reason for x in by_entry)
    assert "JSON is malformed" in by_entry[0].reason
    assert "unexpected message type 'bot_command' on stream:events" in by_entry[1].reason
    assert "intent_id '' does not match" in by_entry[2].reason
    assert "price NaN is not a finite number" in by_entry[3].reason
