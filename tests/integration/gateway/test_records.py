"""Order records against a real redis-server: they only move forward, by compare-and-set
on (status, rev); a final record is never overwritten and expires after the retention;
an in-progress one never expires; every waiting intent is found, page by page."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as async_redis

from services.gateway import scripts
from services.gateway.orders import rejection
from services.gateway.store import Ending, GatewayStore
from shared import keys
from shared.bots import client_order_id
from shared.messages import OrderType, encode
from shared.streams import ensure_group
from tests.integration.gateway.helpers import intent, make_processor, run, seed_market


async def _admitted(store: GatewayStore, cid: str) -> None:
    """A record as admit.lua leaves it (ACCEPTED, no rev yet)."""
    await store.redis.hset(keys.order(cid), mapping={"status": "ACCEPTED", "cid": cid})


async def test_two_handlers_moving_from_the_same_read_one_wins(
    redis: Any, clean_redis_url: str
) -> None:
    """Two gateways (two connections) race ACCEPTED -> SENDING from the same read, many
    times over: exactly one move succeeds each time, the other sees it stale."""
    stores = []
    for name in ("a", "b"):
        client = async_redis.Redis.from_url(clean_redis_url)
        store = GatewayStore(client, mode="live", instance=name)
        await store.load_scripts()
        stores.append(store)
    try:
        for n in range(50):
            cid = f"bf-race{n}"
            await _admitted(stores[0], cid)
            reads = [{"status": "ACCEPTED", "rev": "0"} for _ in stores]
            results = await asyncio.gather(
                *(
                    s.transition(cid, read, "SENDING", 1, sent_at=n)
                    for s, read in zip(stores, reads, strict=True)
                )
            )
            assert sorted(r.outcome for r in results) == ["ok", "stale"]
            winner = next(read for read, r in zip(reads, results, strict=True) if r.ok)
            assert winner == {"status": "SENDING", "rev": "1", "sent_at": str(n)}
            record = await redis.hgetall(keys.order(cid))
            assert record[b"status"] == b"SENDING" and record[b"rev"] == b"1"
    finally:
        for store in stores:
            await store.redis.aclose()


async def test_a_stale_read_cannot_act_even_when_the_status_matches_again(redis: Any) -> None:
    store = GatewayStore(redis, mode="live", instance="a")
    await store.load_scripts()
    cid = "bf-aba"
    await _admitted(store, cid)
    old_read = {"status": "ACCEPTED", "rev": "0"}
    mover = dict(old_read)
    assert (await store.transition(cid, mover, "SENDING", 1)).ok
    assert (await store.transition(cid, mover, "ACCEPTED", 2)).ok  # budget delay: not sent
    result = await store.transition(cid, old_read, "SENDING", 3)
    assert (result.outcome, result.status, result.rev) == ("stale", "ACCEPTED", "2")


async def test_a_filled_record_never_goes_back_to_sending(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    filled = intent("f")
    assert await run(processor, filled) == 0
    cid = client_order_id(filled.intent_id)
    store = processor.store
    record = await store.record(cid)
    assert record["status"] == "FILLED"
    for expected in ({"status": "FILLED", "rev": record.get("rev", "0")}, None):
        keys_, args = store._transition_call(cid, expected, "SENDING", 1, {})
        reply = await redis.evalsha(
            store._sha["transition"], len(keys_), *keys_, scripts.encode(args)
        )
        assert store.parse_transition(reply).outcome == "final"
    # finalize.lua and reject.lua refuse too: one report, the record unchanged
    report = rejection(filled, cid, "late", mode="paper", now_ms=1)
    [completion] = await store.finalize_many([Ending(cid, report)], 1)
    async with redis.pipeline(transaction=False) as pipe:
        store.queue_reject(pipe, b"{}", cid, report, 1)
        replies = await pipe.execute()
    assert completion.outcome == "already" and [r[0] for r in replies] == [b"exists"]
    assert (await store.record(cid))["status"] == "FILLED"
    assert len([1 for _i, f in await redis.xrange(keys.EXECUTIONS)]) == 1


async def test_final_records_expire_and_records_in_progress_do_not(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    processor.store.retention_s = 3600
    filled = intent("ttl-f")
    refused = intent("ttl-r", qty="0.00001")  # below minNotional: rejected
    resting = intent("ttl-o", order_type=OrderType.LIMIT, price="40000")  # rests: OPEN
    assert await run(processor, filled, refused, resting) == 0
    ttl = {
        i.intent_id: await redis.ttl(keys.order(client_order_id(i.intent_id)))
        for i in (filled, refused, resting)
    }
    assert 0 < ttl[filled.intent_id] <= 3600
    assert 0 < ttl[refused.intent_id] <= 3600
    assert ttl[resting.intent_id] == -1  # still followed: kept
    await redis.set(keys.price("BTCUSDT"), "39000")  # crosses: the resting order fills
    assert await processor_follow(processor) == 1
    assert 0 < await redis.ttl(keys.order(client_order_id(resting.intent_id))) <= 3600


async def processor_follow(processor: Any) -> int:
    from services.gateway.paper_follower import PaperFollower
    from tests.integration.gateway.helpers import COSTS

    return await PaperFollower(processor, COSTS).step()


async def test_waiting_intents_pages_through_every_waiting_entry(redis: Any) -> None:
    """700 waiting entries (300 pending with a consumer, 400 never delivered) are all
    found, whatever the page size."""
    store = GatewayStore(redis, mode="live", instance="a")
    await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(700):
            pipe.xadd(keys.ORDER_INTENTS, encode(intent(f"w{n}")))
        await pipe.execute()
    await redis.xreadgroup(keys.GATEWAY_GROUP, "c", {keys.ORDER_INTENTS: ">"}, count=300)
    everything = [entry_id for entry_id, _f in await redis.xrange(keys.ORDER_INTENTS)]
    for page in (7, 100, 500, 1000):
        found = [entry_id for entry_id, _f in await store.waiting_intents(page=page)]
        assert found == everything


async def test_giving_up_ends_an_admitted_record_only_while_it_was_never_sent(
    redis: Any,
) -> None:
    """finalize.lua with ``only_from=ACCEPTED`` (how a given-up entry ends its record)
    refuses once a sender has moved the record to SENDING."""
    store = GatewayStore(redis, mode="live", instance="a")
    await store.load_scripts()
    cid = "bf-giveup"
    await _admitted(store, cid)
    assert (await store.transition(cid, {"status": "ACCEPTED", "rev": "0"}, "SENDING", 1)).ok
    report = rejection(intent("g"), cid, "gave up", mode="live", now_ms=1)
    [completion] = await store.finalize_many([Ending(cid, report, only_from="ACCEPTED")], 1)
    assert completion.outcome == "moved"
    assert (await store.record(cid))["status"] == "SENDING"
    assert await redis.xlen(keys.EXECUTIONS) == 0
