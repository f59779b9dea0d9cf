"""`botfleet gateway` (paper mode) as a real process, against what used to bring it
down: the intents stream deleted under a blocked read, and an entry whose handling
raises. The process stays up, says what happened, and places the next intents."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import redis as sync_redis

from shared import keys
from shared.binance.rules import rules_to_json
from shared.bots import client_order_id
from shared.messages import DeadLetter, Event, ExecutionReport, ExecutionStatus, decode, encode
from tests.integration.gateway.helpers import BTC, ETH, intent
from tests.support.processes import BotfleetProcess


def _env(redis_url: str, instance: str = "gw-c") -> dict[str, str]:
    return {
        "BOTFLEET_REDIS_URL": redis_url,
        "BOTFLEET_INSTANCE": instance,
        "BOTFLEET_TRADING_MODE": "paper",
        "BOTFLEET_GATEWAY_CLAIM_IDLE_MS": "500",
        "BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN": "0",
        "BOTFLEET_GATEWAY_FLEET_ORDERS_PER_MIN": "0",
    }


def _start(r: sync_redis.Redis, tmp_path: Path, url: str) -> BotfleetProcess:
    proc = BotfleetProcess(["gateway"], tmp_path / "gw.log", _env(url)).start()
    proc.wait_for(lambda: r.exists(keys.health("gateway", "gw-c")) == 1, 30, "heartbeat")
    return proc


def _finals(r: sync_redis.Redis) -> dict[str, list[ExecutionReport]]:
    out: dict[str, list[ExecutionReport]] = {}
    for _id, fields in r.xrange(keys.EXECUTIONS):
        report = decode(fields)
        assert isinstance(report, ExecutionReport)
        if report.final:
            out.setdefault(report.intent_id, []).append(report)
    return out


def _events(r: sync_redis.Redis, kind: str) -> list[Event]:
    found = []
    for _id, fields in r.xrange(keys.EVENTS):
        event = decode(fields)
        if isinstance(event, Event) and event.kind == kind:
            found.append(event)
    return found


def test_deleted_intents_stream_is_recreated_and_the_next_intent_is_placed(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    r.hset(keys.EXCHANGE_SYMBOLS, BTC.symbol, rules_to_json(BTC))
    r.set(keys.price("BTCUSDT"), "50000")
    gw = _start(r, tmp_path, clean_redis_url)
    processes.append(gw)
    before = intent("before-del")
    r.xadd(keys.ORDER_INTENTS, encode(before))
    gw.wait_for(lambda: before.intent_id in _finals(r), 20, "the first intent's report")
    r.delete(keys.ORDER_INTENTS)  # under the blocked XREADGROUP of both read loops
    gw.wait_for(lambda: bool(_events(r, "stream.recreated")), 20, "stream.recreated event")
    assert gw.alive()
    after = intent("after-del")
    r.xadd(keys.ORDER_INTENTS, encode(after))
    gw.wait_for(lambda: after.intent_id in _finals(r), 20, "the next intent's report")
    assert _finals(r)[after.intent_id][0].status is ExecutionStatus.FILLED
    assert gw.alive()


def test_an_entry_whose_handling_raises_is_rejected_and_the_next_entries_go_on(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    """ETHUSDT's rules carry a minNotional of NaN: sizing raises InvalidOperation for
    every ETHUSDT intent. Each one gets a REJECTED report with the reason and a dead
    letter; the BTCUSDT intents around it (same batches) fill."""
    r = sync_redis_client
    poisoned = msgspec.structs.replace(ETH, min_notional=Decimal("NaN"))
    for rules in (BTC, poisoned):
        r.hset(keys.EXCHANGE_SYMBOLS, rules.symbol, rules_to_json(rules))
    r.set(keys.price("BTCUSDT"), "50000")
    r.set(keys.price("ETHUSDT"), "2500")
    gw = _start(r, tmp_path, clean_redis_url)
    processes.append(gw)
    bad = intent("poison", symbol="ETHUSDT", qty="0.1")
    good = [intent(f"good{n}", qty="0.001") for n in range(6)]
    pipe = r.pipeline(transaction=False)
    for item in [*good[:3], bad, *good[3:]]:  # in one batch with healthy intents
        pipe.xadd(keys.ORDER_INTENTS, encode(item))
    pipe.execute()
    wanted = {i.intent_id for i in [bad, *good]}
    gw.wait_for(lambda: wanted <= set(_finals(r)), 20, "a final report for every intent")
    finals = _finals(r)
    assert all(len(finals[i]) == 1 for i in wanted)
    [rejected] = finals[bad.intent_id]
    assert rejected.status is ExecutionStatus.REJECTED
    assert rejected.reason.startswith("handling failed: InvalidOperation")
    assert all(finals[g.intent_id][0].status is ExecutionStatus.FILLED for g in good)
    letters = [decode(f) for _i, f in r.xrange(keys.DEAD_LETTER)]
    assert [
        (x.reason.startswith("handling failed"), x.source)
        for x in letters
        if isinstance(x, DeadLetter)
    ] == [(True, keys.ORDER_INTENTS)]
    [event] = _events(r, "intent.dead_lettered")
    assert event.details["client_order_id"] == client_order_id(bad.intent_id)
    gw.wait_for(
        lambda: r.xpending(keys.ORDER_INTENTS, keys.GATEWAY_GROUP)["pending"] == 0,
        10,
        "every entry acknowledged",
    )
    # still alive and placing: the next intent after the poison fills
    later = intent("later", qty="0.001")
    r.xadd(keys.ORDER_INTENTS, encode(later))
    gw.wait_for(lambda: later.intent_id in _finals(r), 20, "the next intent's report")
    assert gw.alive()
