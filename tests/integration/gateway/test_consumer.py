"""The intent consumer in-process over a real redis-server: entries delivered too many
times are given up (dead letter, event, REJECTED report when never sent) except an
order that may be on the exchange; a hold keeps every entry pending until released."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from services.gateway.consumer import IntentConsumer
from shared import keys
from shared.bots import client_order_id
from shared.messages import DeadLetter, Event, ExecutionStatus, decode, encode
from shared.streams import ensure_group
from tests.integration.gateway.helpers import final_reports, intent, make_processor, seed_market


async def _pending_with(
    redis: Any, consumer: str, *fields: dict[Any, Any], times: int
) -> list[Any]:
    """Entries pending with ``consumer``, each delivered ``times`` times so far."""
    await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
    ids = [await redis.xadd(keys.ORDER_INTENTS, f) for f in fields]
    await redis.xreadgroup(keys.GATEWAY_GROUP, consumer, {keys.ORDER_INTENTS: ">"}, count=100)
    await redis.xclaim(keys.ORDER_INTENTS, keys.GATEWAY_GROUP, consumer, 0, ids, retrycount=times)
    return ids


async def _const(value: bool) -> bool:
    return value


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Wait for ``check`` with a deadline (polling every 20 ms)."""
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def _events(redis: Any, kind: str) -> list[Event]:
    found = [decode(f) for _i, f in await redis.xrange(keys.EVENTS)]
    return [e for e in found if isinstance(e, Event) and e.kind == kind]


async def test_an_entry_delivered_too_often_is_given_up_unless_its_order_may_be_placed(
    redis: Any,
) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    never_sent = intent("too-often")
    in_flight = intent("maybe-placed")
    cid = client_order_id(in_flight.intent_id)
    await redis.hset(
        keys.order(cid),
        mapping={"status": "SENDING", "cid": cid, "intent": encode(in_flight)["data"]},
    )
    admitted = intent("admitted-never-sent")
    acid = client_order_id(admitted.intent_id)
    await redis.hset(
        keys.order(acid),
        mapping={"status": "ACCEPTED", "cid": acid, "reserved": "0", "opened": "0"},
    )
    garbage = {"type": "order_intent", "data": "{not json"}
    # pending with a consumer that died, each delivered 11 times: the claim is the 12th
    ids = await _pending_with(
        redis, "dead", encode(never_sent), encode(in_flight), garbage, encode(admitted), times=11
    )
    consumer = IntentConsumer(redis, processor, "c", claim_idle_ms=0, max_deliveries=10)
    await consumer._claim_dead()

    letters = [decode(f) for _i, f in await redis.xrange(keys.DEAD_LETTER)]
    assert sorted(x.entry_id for x in letters if isinstance(x, DeadLetter)) == sorted(
        [ids[0].decode(), ids[2].decode(), ids[3].decode()]
    )
    assert all("delivered 12 times (limit 10)" in x.reason for x in letters)  # type: ignore[union-attr]
    [rejected] = (await final_reports(redis))[never_sent.intent_id]
    assert rejected.status is ExecutionStatus.REJECTED
    assert rejected.reason.startswith("delivered 12 times")
    assert len(await _events(redis, "intent.dead_lettered")) == 3
    # admitted but never sent: ended as REJECTED (its reservation released)
    [ended] = (await final_reports(redis))[admitted.intent_id]
    assert ended.status is ExecutionStatus.REJECTED and ended.reason.startswith("delivered")
    assert (await redis.hget(keys.order(acid), "status")) == b"REJECTED"
    # the order that may be on the exchange was not abandoned: an event, then resolved
    [kept] = await _events(redis, "intent.unresolved")
    assert kept.details["client_order_id"] == cid
    assert in_flight.intent_id not in {x.entry_id for x in letters if isinstance(x, DeadLetter)}


async def test_our_own_retries_of_a_delayed_intent_are_not_failed_deliveries(
    redis: Any,
) -> None:
    """An entry this gateway left pending on purpose (an unknown outcome, an order the
    fleet's weight budget delayed for up to a minute) is retried every second: however
    often, it is placed when it can be, never given up for its retries."""
    await seed_market(redis)
    processor = await make_processor(redis)
    delayed = intent("delayed-by-the-budget")
    [entry_id] = await _pending_with(redis, "c", encode(delayed), times=50)
    consumer = IntentConsumer(redis, processor, "c", retry_idle_ms=0, max_deliveries=10)
    await consumer._retry_pending()
    [report] = (await final_reports(redis))[delayed.intent_id]
    assert report.status is ExecutionStatus.FILLED
    assert await redis.xlen(keys.DEAD_LETTER) == 0
    pending = await redis.xpending_range(
        keys.ORDER_INTENTS, keys.GATEWAY_GROUP, min="-", max="+", count=10
    )
    assert entry_id not in {row["message_id"] for row in pending}  # acknowledged


async def test_a_hold_keeps_every_entry_pending_until_it_is_released(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    reason = ["exchange refused the credentials: -2015 Invalid API-key"]
    consumer = IntentConsumer(
        redis, processor, "c", retry_idle_ms=0, claim_idle_ms=100, hold=lambda: reason[0]
    )
    await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
    held = intent("held")
    await redis.xadd(keys.ORDER_INTENTS, encode(held))
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(consumer.ready.wait(), 10)

        # the loops are up and holding (a positive sign): then nothing was read
        await _until(lambda: _const(consumer._held == reason[0]), "holding")
        await asyncio.sleep(0)  # let both loops pass their hold check
        groups = await redis.xinfo_groups(keys.ORDER_INTENTS)
        assert groups[0]["pending"] == 0 and groups[0]["lag"] == 1  # never read
        assert await redis.xlen(keys.EXECUTIONS) == 0
        reason[0] = ""  # released

        async def reported() -> bool:
            return held.intent_id in await final_reports(redis)

        await _until(reported, "the held intent's report")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
