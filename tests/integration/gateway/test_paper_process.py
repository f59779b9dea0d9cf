"""`botfleet gateway` in paper mode as a real process: killed with -9 in the middle of a
stream of intents, another instance takes over its pending entries (XAUTOCLAIM), and
every intent still ends in exactly one report, with balances matching the fills."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import redis as sync_redis

from shared import keys
from shared.binance.rules import rules_to_json
from shared.messages import ExecutionReport, ExecutionStatus, decode, encode
from shared.money import from_units
from tests.integration.gateway.helpers import BTC, ETH, intent
from tests.integration.gateway.live_support import wait_settled
from tests.support.processes import BotfleetProcess

N = 400


def _env(redis_url: str, instance: str) -> dict[str, str]:
    return {
        "BOTFLEET_REDIS_URL": redis_url,
        "BOTFLEET_INSTANCE": instance,
        "BOTFLEET_TRADING_MODE": "paper",
        "BOTFLEET_GATEWAY_CLAIM_IDLE_MS": "500",
        "BOTFLEET_GATEWAY_BATCH": "16",
        "BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN": "0",
        "BOTFLEET_GATEWAY_FLEET_ORDERS_PER_MIN": "0",
        "BOTFLEET_PAPER_BALANCES": "USDT=10000000",
    }


def _finals(client: sync_redis.Redis) -> dict[str, list[ExecutionReport]]:
    out: dict[str, list[ExecutionReport]] = {}
    for _id, fields in client.xrange(keys.EXECUTIONS):
        report = decode(fields)
        assert isinstance(report, ExecutionReport)
        if report.final:
            out.setdefault(report.intent_id, []).append(report)
    return out


def test_killed_gateway_is_taken_over_and_every_intent_ends_once(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    for rules in (BTC, ETH):
        r.hset(keys.EXCHANGE_SYMBOLS, rules.symbol, rules_to_json(rules))
    r.set(keys.price("BTCUSDT"), "50000")
    first = BotfleetProcess(["gateway"], tmp_path / "a.log", _env(clean_redis_url, "gw-a")).start()
    processes.append(first)
    first.wait_for(lambda: r.exists(keys.health("gateway", "gw-a")) == 1, 30, "heartbeat")
    intents = [intent(n, bot=f"bot{n % 20}", qty="0.001") for n in range(N)]

    def produce(batch: list) -> None:
        pipe = r.pipeline(transaction=False)
        for item in batch:
            pipe.xadd(keys.ORDER_INTENTS, encode(item))
        pipe.execute()

    # Half the stream goes to the first instance, which is killed -9 as soon as it has
    # reported some (a paper gateway is fast enough to finish 400 before a poll sees
    # it otherwise); the rest arrives while no gateway runs.
    produce(intents[: N // 2])
    first.wait_for(lambda: r.xlen(keys.EXECUTIONS) > 20, 20, "some reports")
    first.kill()  # kill -9 mid-stream
    done_by_first = r.xlen(keys.EXECUTIONS)
    produce(intents[N // 2 :])

    second = BotfleetProcess(["gateway"], tmp_path / "b.log", _env(clean_redis_url, "gw-b")).start()
    processes.append(second)
    second.wait_for(lambda: len(_finals(r)) == N, 60, "a final report for every intent")
    wait_settled(r, second)  # past every entry: no second report can still be coming
    finals = _finals(r)
    assert all(len(v) == 1 for v in finals.values()), "an intent was reported twice"
    filled = sum(1 for v in finals.values() if v[0].status is ExecutionStatus.FILLED)
    assert filled == N
    btc = from_units(r.hget(keys.balances("paper"), "BTC:free"))
    assert btc == Decimal("0.001") * N  # one fill per intent, no more
    assert r.xpending(keys.ORDER_INTENTS, keys.GATEWAY_GROUP)["pending"] == 0
    assert done_by_first < N  # the second instance really took over work
