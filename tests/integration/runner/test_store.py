"""The chunked, fenced scripts of the books writer against a real redis-server: one
call carries many bots, and the fence still holds for each bot on its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from services.runner import store as store_module
from services.runner.batch import CommitBatch
from services.runner.core import BotState, Change, hold_entry, log_entry
from services.runner.store import BotStore
from shared import keys
from shared.messages import Candle, OrderIntent, decode_as
from shared.strategies.base import Signal, SignalAction
from tests.support.messages import candle as flat_candle

CFG = json.dumps(
    {
        "name": "t",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "strategy": "rsi",
        "quote_allocation": "1000",
        "sizing": {"mode": "fixed_quote", "quote_amount": "100"},
    }
)
BUY = Signal(action=SignalAction.BUY, reason="crossed")
HOLD = Signal(action=SignalAction.HOLD, reason="RSI(14) 41.00", metadata={"rsi": 41.0})


def candle(open_time: int) -> Candle:
    return flat_candle("BTCUSDT", 60_000, open_time, 100)


@pytest.fixture
async def store(redis: Any) -> AsyncIterator[BotStore]:
    books = BotStore(redis, "r1")
    yield books
    await books.close()


async def claimed(redis: Any, store: BotStore, ids: list[str]) -> list[BotState]:
    for bot_id in ids:
        await redis.hset(keys.bot(bot_id), mapping={"config": CFG, "desired": "running"})
    epochs = await store.claim(ids, 60_000, 0)
    records = await store.load(ids)
    states = [rec.state(b, e) for b, rec, (e, _) in zip(ids, records, epochs, strict=True)]
    for state in states:
        state.status = "running"
    return states


async def test_a_chunk_commit_writes_every_fenced_bot_and_nothing_for_a_bot_taken_over(
    redis: Any, store: BotStore
) -> None:
    states = await claimed(redis, store, [f"b{i}" for i in range(5)])
    # b2 was adopted by another runner (lease lapsed, new epoch): r1 is a zombie for it.
    await redis.set(keys.bot_lease("b2"), "r2")
    await redis.hincrby(keys.bot("b2"), "epoch", 1)
    items = [(st, st.on_signal(candle(60_000), BUY, 1, "0-0")) for st in states]
    assert await store.commit(items) == [True, True, False, True, True]
    intents = [decode_as(f, OrderIntent) for _, f in await redis.xrange(keys.ORDER_INTENTS)]
    assert [i.bot_id for i in intents] == ["b0", "b1", "b3", "b4"]
    assert not await redis.exists(keys.bot_pending("b2"), keys.bot_log("b2"))
    pending = await redis.hgetall(keys.bot_pending("b0"))
    assert msgspec.json.decode(pending[b"intent"], type=OrderIntent) == intents[0]
    assert pending[b"intent_id"] == b"b0:60000:buy"


async def test_a_group_hold_is_logged_for_each_fenced_bot_once(redis: Any, store: BotStore) -> None:
    states = await claimed(redis, store, ["h0", "h1", "h2"])
    await redis.set(keys.bot_lease("h1"), "r2")
    assert all(st.on_hold(candle(120_000)) for st in states)
    assert not states[0].on_hold(candle(120_000))  # decided once
    entry = hold_entry(5, HOLD, Decimal(100), 120_000)
    own = hold_entry(5, HOLD, Decimal(100), 180_000)
    assert own == states[0].on_signal(candle(180_000), HOLD, 5, "0-0").log[0] | {
        "ts": "5"
    }  # the same entry as a bot's own HOLD
    assert own["candle"] == "180000" and own["values"] == '{"rsi":41.0}'
    assert await store.decided([(120_000, entry, states)]) == [True, False, True]
    for bot_id, logged in (("h0", True), ("h1", False), ("h2", True)):
        log = await redis.xrange(keys.bot_log(bot_id))
        assert len(log) == (1 if logged else 0)
        assert (await redis.hget(keys.bot_stats(bot_id), "last_candle")) == (
            b"120000" if logged else None
        )
    assert (await redis.xrange(keys.bot_log("h0")))[0][1][b"reason"] == b"RSI(14) 41.00"


async def test_many_groups_holds_go_in_few_calls_each_bot_with_its_own_group(
    redis: Any, store: BotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "CHUNK", 2)  # groups split across calls too
    states = await claimed(redis, store, [f"g{i}" for i in range(6)])
    await redis.set(keys.bot_lease("g4"), "r2")
    first = hold_entry(7, HOLD, Decimal(100))
    second = hold_entry(8, Signal(action=SignalAction.HOLD, reason="RSI(7) 55.00"), Decimal(101))
    groups = [
        (60_000, first, states[:3]),
        (120_000, None, states[3:4]),
        (180_000, second, states[4:]),
    ]
    assert await store.decided(groups) == [True, True, True, True, False, True]
    for bot_id, candle_at, reason in (
        ("g0", b"60000", b"RSI(14) 41.00"),
        ("g2", b"60000", b"RSI(14) 41.00"),
        ("g3", b"120000", None),
        ("g5", b"180000", b"RSI(7) 55.00"),
    ):
        assert await redis.hget(keys.bot_stats(bot_id), "last_candle") == candle_at
        log = await redis.xrange(keys.bot_log(bot_id))
        assert [e[b"reason"] for _, e in log] == ([reason] if reason else [])
    assert not await redis.exists(keys.bot_stats("g4"), keys.bot_log("g4"))


async def test_a_bot_changed_again_after_its_chunk_left_lands_after_it(
    redis: Any, store: BotStore
) -> None:
    [state] = await claimed(redis, store, ["o0"])
    settled: list[tuple[str, bool]] = []
    batch = CommitBatch(
        store, lambda items, ok: settled.extend(zip([s.bot_id for s, _ in items], ok, strict=True))
    )
    await batch.add(state, Change(log=[log_entry(1, "skip", "first")]))  # leaves at once
    await batch.add(state, Change(log=[log_entry(2, "skip", "second")]))
    await batch.drain()
    reasons = [f[b"reason"] for _, f in await redis.xrange(keys.bot_log("o0"))]
    assert reasons == [b"first", b"second"]
    assert settled == [("o0", True), ("o0", True)]


async def test_a_rounds_first_intent_has_landed_before_the_next_bot_is_decided(
    redis: Any, store: BotStore
) -> None:
    """The first chunk is awaited to the end (the reader of the intent gets the CPU);
    the later ones only until their request is on its way."""
    states = await claimed(redis, store, [f"f{i}" for i in range(40)])
    batch = CommitBatch(store, lambda items, ok: None)
    await batch.add(states[0], states[0].on_signal(candle(60_000), BUY, 1, "0-0"))
    assert [task.done() for _, task in batch.in_flight] == [True]  # its reply is read
    assert await redis.xlen(keys.ORDER_INTENTS) == 1
    for state in states[1:]:
        await batch.add(state, state.on_signal(candle(60_000), BUY, 1, "0-0"))
    await batch.drain()
    assert await redis.xlen(keys.ORDER_INTENTS) == 40


async def test_a_chunk_sent_early_after_redis_lost_its_scripts_still_lands(
    redis: Any, store: BotStore
) -> None:
    """A restarted Redis has no scripts (NOSCRIPT): nothing ran, the chunk is sent again."""
    [state] = await claimed(redis, store, ["n0"])
    await redis.script_flush()
    settled: list[bool] = []
    batch = CommitBatch(store, lambda _, ok: settled.extend(ok))
    await batch.add(state, state.on_signal(candle(60_000), BUY, 1, "0-0"))
    await batch.drain()
    assert settled == [True] and await redis.xlen(keys.ORDER_INTENTS) == 1


async def test_a_commit_on_a_connection_the_server_dropped_lands_on_a_new_one(
    redis: Any, store: BotStore
) -> None:
    """Idle connections die (a Redis restart, an idle timeout, a proxy): the call is
    made again on a new connection, as the client does for its own commands."""
    states = await claimed(redis, store, ["k0", "k1"])
    idle = list(store.scripts.lanes.idle)
    assert idle  # the claim and load left their connections for reuse
    for conn in idle:
        client_id = await conn_client_id(redis, conn)
        assert await redis.client_kill_filter(_id=client_id) == 1
    items = [(st, st.on_signal(candle(60_000), BUY, 1, "0-0")) for st in states]
    assert await store.commit(items) == [True, True]
    assert await redis.xlen(keys.ORDER_INTENTS) == 2


async def conn_client_id(redis: Any, conn: Any) -> int:
    """The server's id of one of the store's connections (by its local port)."""
    port = conn._writer.get_extra_info("sockname")[1]
    for client in await redis.client_list():
        if client["addr"].endswith(f":{port}"):
            return int(client["id"])
    raise AssertionError(f"no client on port {port}")
