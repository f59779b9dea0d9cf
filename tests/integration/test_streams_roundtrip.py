"""Stream messages survive a real Redis consumer group: XADD, XREADGROUP, XACK and
XAUTOCLAIM through the shared codec, and a bad entry becomes a dead letter."""

from __future__ import annotations

from decimal import Decimal

from shared import keys
from shared.messages import DeadLetter, OrderIntent, Side, decode
from shared.streams import decode_entry, ensure_group, publish


def _intent(n: int) -> OrderIntent:
    return OrderIntent(
        intent_id=f"bot1-{n}-entry",
        bot_id="bot1",
        epoch=3,
        symbol="BTCUSDT",
        side=Side.BUY,
        quote_quantity=Decimal("25.50"),
        reason="rsi crossed up",
        created_at=1_700_000_000_000 + n,
    )


async def test_intent_round_trips_through_consumer_group(redis) -> None:
    await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
    await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)  # idempotent
    sent = [_intent(n) for n in range(3)]
    for intent in sent:
        await publish(redis, keys.ORDER_INTENTS, intent)

    reply = await redis.xreadgroup(keys.GATEWAY_GROUP, "gw-a", {keys.ORDER_INTENTS: ">"}, count=10)
    entries = reply[0][1]
    got = [await decode_entry(redis, keys.ORDER_INTENTS, eid, f, OrderIntent) for eid, f in entries]
    assert got == sent
    assert got[0].quote_quantity == Decimal("25.50")

    await redis.xack(keys.ORDER_INTENTS, keys.GATEWAY_GROUP, entries[0][0])
    pending = await redis.xpending(keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
    assert pending["pending"] == 2

    # A second gateway takes over what the first (dead) one left pending.
    _next, claimed, _deleted = await redis.xautoclaim(
        keys.ORDER_INTENTS, keys.GATEWAY_GROUP, "gw-b", min_idle_time=0, start_id="0-0"
    )
    claimed_intents = [
        await decode_entry(redis, keys.ORDER_INTENTS, eid, f, OrderIntent) for eid, f in claimed
    ]
    assert claimed_intents == sent[1:]
    for eid, _ in claimed:
        await redis.xack(keys.ORDER_INTENTS, keys.GATEWAY_GROUP, eid)
    assert (await redis.xpending(keys.ORDER_INTENTS, keys.GATEWAY_GROUP))["pending"] == 0


async def test_malformed_entry_goes_to_dead_letter_with_reason(redis) -> None:
    entry_id = await redis.xadd(
        keys.ORDER_INTENTS, {"type": "order_intent", "data": b'{"intent_id": 5}'}
    )
    fields = (await redis.xrange(keys.ORDER_INTENTS))[0][1]
    assert (
        await decode_entry(redis, keys.ORDER_INTENTS, entry_id, fields, OrderIntent, service="test")
        is None
    )

    letters = await redis.xrange(keys.DEAD_LETTER)
    assert len(letters) == 1
    letter = decode(letters[0][1])
    assert isinstance(letter, DeadLetter)
    assert letter.source == keys.ORDER_INTENTS
    assert letter.entry_id == entry_id.decode()
    assert "intent_id" in letter.reason
    assert letter.fields["data"] == '{"intent_id": 5}'
