"""Whatever an order-intent entry holds, the gateway answers it and carries on (issue 14).

Arbitrary intent-like field maps (a valid intent with fields replaced by hostile values,
removed or added, and now and then bytes that are not JSON at all) go through the real
stream and consumer group to the gateway's Processor in paper mode, then to a live
gateway process against the exchange simulator. Every entry ends acknowledged, either
as a dead letter naming why (it can never be an intent) or with a report for its
intent, nothing escapes the handler, a good intent sent after them fills (the positive
sign that the batch was handled), and only intents that decode reach the exchange.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared import keys
from shared.bots import client_order_id
from shared.messages import (
    DeadLetter,
    ExecutionReport,
    ExecutionStatus,
    MessageDecodeError,
    OrderIntent,
    decode,
    decode_as,
)
from shared.redis import create_redis
from shared.streams import ensure_group
from tests.integration.gateway.helpers import make_processor, seed_market
from tests.integration.gateway.live_support import gateway_env, seed_from_sim, start_gateway
from tests.support.message_strategies import hostile
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient, start_sim

_tags = itertools.count()


class _Delete:
    """A change that removes the field."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
FIELDS = sorted(OrderIntent.__struct_fields__)
# Values that keep an intent valid, so that some poisoned maps still decode.
PLAUSIBLE: list[Any] = ["SELL", "LIMIT", "GTC", "0.002", "60000", "ETHUSDT", 7, True, "why"]

changes = st.dictionaries(
    st.sampled_from([*FIELDS, "extra"]),
    st.one_of(st.just(DELETE), st.sampled_from(PLAUSIBLE), hostile),
    max_size=3,
)
entries = st.lists(
    st.one_of(changes, st.binary(max_size=40)),  # bytes: the data field is not even JSON
    min_size=1,
    max_size=6,
)
NAMED: list[Any] = [
    {"quantity": "NaN"},
    {"quantity": DELETE, "quote_quantity": "Infinity"},
    {"symbol": ""},
    {"intent_id": ""},
    {"bot_id": ""},
    {"quantity": "1e999999999"},
    {"quantity": DELETE, "quote_quantity": "1e999999999"},
]


def poisoned(tag: str, n: int, change: dict[str, Any] | bytes, qty: str) -> dict[bytes, bytes]:
    """The stream fields of entry ``n``: a valid MARKET buy of bot ``poison`` with
    ``change`` applied (or ``change`` itself as the data, when it is bytes)."""
    if isinstance(change, bytes):
        return {b"type": b"order_intent", b"data": change}
    data: dict[str, Any] = {
        "intent_id": f"poison:{tag}-{n}:buy",
        "bot_id": "poison",
        "epoch": 1,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "order_type": "MARKET",
        "quantity": qty,
    }
    for name, value in change.items():
        if value is DELETE:
            data.pop(name, None)
        else:
            data[name] = value
    return {b"type": b"order_intent", b"data": json.dumps(data).encode()}


def sentinel(tag: str, qty: str) -> dict[bytes, bytes]:
    return poisoned(tag, 999, {"intent_id": f"poison:{tag}-good:buy"}, qty)


def intent_of(fields: dict[bytes, bytes]) -> OrderIntent | None:
    try:
        return decode_as(fields, OrderIntent)
    except MessageDecodeError:
        return None


def check_outcomes(
    sent: list[tuple[bytes, dict[bytes, bytes]]],
    letters: list[DeadLetter],
    found: list[ExecutionReport],
) -> None:
    """Each entry that cannot be an intent is a dead letter with a reason; each that can
    has a report for its intent; the good one filled."""
    dead = {x.entry_id: x for x in letters if x.source == keys.ORDER_INTENTS}
    reported = {report.intent_id for report in found}
    for entry_id, fields in sent:
        intent = intent_of(fields)
        if intent is None:
            assert dead[entry_id.decode()].reason, fields
        else:
            assert intent.intent_id in reported, fields
    good = [r for r in found if r.intent_id.endswith("-good:buy") and r.final]
    assert good and {r.status for r in good} == {ExecutionStatus.FILLED}


# --- paper: the Processor in process -----------------------------------------------------


async def _paper_round(url: str, batch: list[dict[str, Any] | bytes]) -> None:
    redis = create_redis(url)
    try:
        await redis.flushall()
        await seed_market(redis)
        processor = await make_processor(redis)
        await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
        tag = str(next(_tags))
        sent = []
        for n, change in enumerate(batch):
            fields = poisoned(tag, n, change, "0.01")
            sent.append((await redis.xadd(keys.ORDER_INTENTS, fields), fields))
        good = sentinel(tag, "0.01")
        sent.append((await redis.xadd(keys.ORDER_INTENTS, good), good))
        reply = await redis.xreadgroup(
            keys.GATEWAY_GROUP, "t", {keys.ORDER_INTENTS: ">"}, count=1000
        )
        ack = await processor.handle(reply[0][1])  # an escaping exception fails the test
        if ack:
            await redis.xack(keys.ORDER_INTENTS, keys.GATEWAY_GROUP, *ack)
        pending = await redis.xpending(keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
        assert pending["pending"] == 0
        letters = [decode(f) for _i, f in await redis.xrange(keys.DEAD_LETTER)]
        found = [decode(f) for _i, f in await redis.xrange(keys.EXECUTIONS)]
        check_outcomes(sent, letters, found)  # type: ignore[arg-type]
        # paper orders exist only for intents that decode
        valid = {client_order_id(i.intent_id) for _e, f in sent if (i := intent_of(f))}
        async for key in redis.scan_iter(match="order:*"):
            assert key.decode().removeprefix("order:{").removesuffix("}") in valid
    finally:
        await redis.aclose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=entries)
@example(batch=NAMED)
@example(batch=[b"", b"not json", b"[]", b'{"v": 1}'])
def test_poisoned_intents_in_paper_mode_are_answered_and_the_batch_goes_on(
    clean_redis_url: str, batch: list[dict[str, Any] | bytes]
) -> None:
    asyncio.run(_paper_round(clean_redis_url, batch))


# --- live: a gateway process against the simulator ---------------------------------------


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(tmp_path_factory.mktemp("sim-poison"), speed=60.0)
    yield client
    client.stop()


def test_poisoned_intents_never_reach_the_exchange_and_the_live_gateway_lives_on(
    clean_redis_url: str, sim: SimClient, tmp_path: Path, processes: list[BotfleetProcess]
) -> None:
    r = sync_redis.Redis.from_url(clean_redis_url)
    seed_from_sim(r, sim)
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url))
    processes.append(gw)
    run = f"live{time.time_ns()}"
    all_sent: list[tuple[bytes, dict[bytes, bytes]]] = []

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=entries)
    @example(batch=NAMED)
    def one_batch(batch: list[dict[str, Any] | bytes]) -> None:
        tag = f"{run}-{next(_tags)}"
        sent = [(r.xadd(keys.ORDER_INTENTS, f), f) for f in (
            poisoned(tag, n, change, "0.001") for n, change in enumerate(batch)
        )]  # fmt: skip
        good = sentinel(tag, "0.001")
        sent.append((r.xadd(keys.ORDER_INTENTS, good), good))
        all_sent.extend(sent)
        good_id = f"poison:{tag}-good:buy"
        gw.wait_for(
            lambda: any(
                m.intent_id == good_id and m.final
                for m in (decode(f) for _i, f in r.xrange(keys.EXECUTIONS))
                if isinstance(m, ExecutionReport)
            ),
            30,
            "the good intent after the poisoned ones filled",
        )

    one_batch()
    assert gw.alive()
    gw.wait_for(
        lambda: r.xpending(keys.ORDER_INTENTS, keys.GATEWAY_GROUP)["pending"] == 0,
        20,
        "every entry acknowledged",
    )
    letters = [decode(f) for _i, f in r.xrange(keys.DEAD_LETTER)]
    found = [decode(f) for _i, f in r.xrange(keys.EXECUTIONS)]
    check_outcomes(all_sent, letters, found)  # type: ignore[arg-type]
    # the simulator (this module's own) holds orders of decodable intents only, one each
    valid = {client_order_id(i.intent_id) for _e, f in all_sent if (i := intent_of(f))}
    placed = [o["clientOrderId"] for o in sim.orders()]
    assert placed and set(placed) <= valid
    assert len(placed) == len(set(placed))
    r.close()
