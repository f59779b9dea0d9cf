"""Helpers of the live-mode tests: a gateway process against the simulator, the market
data it needs in Redis, intents in, reports out (all through the real stream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis as sync_redis

from shared import keys
from shared.binance.rules import rules_from_symbol_info, rules_to_json
from shared.binance.schemas import ExchangeInfo
from shared.bots import client_order_id
from shared.messages import ExecutionReport, OrderIntent, decode, encode
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient


def seed_from_sim(client: sync_redis.Redis, sim: SimClient) -> None:
    """exchange:symbols and price:{S} as ingestion would write them."""
    info = msgspec.json.decode(
        httpx.get(sim.rest_url + "/api/v3/exchangeInfo", timeout=10).content, type=ExchangeInfo
    )
    for symbol in info.symbols:
        client.hset(
            keys.EXCHANGE_SYMBOLS, symbol.symbol, rules_to_json(rules_from_symbol_info(symbol))
        )
    for row in httpx.get(sim.rest_url + "/api/v3/ticker/price", timeout=10).json():
        client.set(keys.price(row["symbol"]), row["price"])


def gateway_env(sim: SimClient, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **sim.env(),
        "BOTFLEET_REDIS_URL": redis_url,
        "BOTFLEET_TRADING_MODE": "live",
        "BOTFLEET_INSTANCE": "gw-test",
        # the simulator runs its clock faster than the wall and accepts wall timestamps
        "BOTFLEET_GATEWAY_USE_SERVER_TIME": "false",
        "BOTFLEET_GATEWAY_HTTP_TIMEOUT_S": "2",
        "BOTFLEET_GATEWAY_POLL_INTERVAL_S": "0.2",
        "BOTFLEET_GATEWAY_CLAIM_IDLE_MS": "1000",
        "BOTFLEET_GATEWAY_MAX_ORDER_NOTIONAL": "100000",
        "BOTFLEET_LOG_LEVEL": "debug",
        **extra,
    }


def start_gateway(tmp_path: Path, env: dict[str, str], name: str = "gateway") -> BotfleetProcess:
    proc = BotfleetProcess(["gateway"], tmp_path / f"{name}.log", env).start()
    client = sync_redis.Redis.from_url(env["BOTFLEET_REDIS_URL"])
    try:
        proc.wait_for(
            lambda: client.exists(keys.health("gateway", env["BOTFLEET_INSTANCE"])) == 1,
            30,
            "gateway heartbeat",
        )
    except BaseException:
        proc.kill()  # not yet in the test's `processes`: never leave it running
        raise
    finally:
        client.close()
    return proc


def send(client: sync_redis.Redis, *intents: OrderIntent) -> None:
    for item in intents:
        client.xadd(keys.ORDER_INTENTS, encode(item))


def reports(client: sync_redis.Redis) -> list[ExecutionReport]:
    out = []
    for _id, fields in client.xrange(keys.EXECUTIONS):
        message = decode(fields)
        assert isinstance(message, ExecutionReport)
        out.append(message)
    return out


def wait_final(
    client: sync_redis.Redis, intents: list[OrderIntent], proc: BotfleetProcess, timeout: float = 20
) -> dict[str, list[ExecutionReport]]:
    wanted = {i.intent_id for i in intents}

    def finals() -> dict[str, list[ExecutionReport]]:
        got: dict[str, list[ExecutionReport]] = {}
        for r in reports(client):
            if r.final and r.intent_id in wanted:
                got.setdefault(r.intent_id, []).append(r)
        return got

    proc.wait_for(lambda: set(finals()) == wanted, timeout, f"final reports for {sorted(wanted)}")
    wait_settled(client, proc, timeout)
    return finals()


def intents_settled(client: sync_redis.Redis) -> bool:
    """The gateway group has taken every intent entry and acknowledged each: a report is
    written before its entry is acknowledged (in one step), so no report of these
    entries can still be coming."""
    last = client.xrevrange(keys.ORDER_INTENTS, count=1)
    if not last:
        return True
    groups = {g["name"].decode(): g for g in client.xinfo_groups(keys.ORDER_INTENTS)}
    group = groups.get(keys.GATEWAY_GROUP)
    if group is None:
        return False
    delivered = group["last-delivered-id"]
    return delivered == last[0][0] and int(group["pending"]) == 0


def wait_settled(client: sync_redis.Redis, proc: BotfleetProcess, timeout: float = 20) -> None:
    """Wait for the positive sign that the gateway is past every intent (see above)."""
    proc.wait_for(lambda: intents_settled(client), timeout, "every intent entry acknowledged")


def sim_orders(sim: SimClient, intents: list[OrderIntent]) -> dict[str, int]:
    by_cid: dict[str, int] = {}
    for order in sim.orders():
        by_cid[order["clientOrderId"]] = by_cid.get(order["clientOrderId"], 0) + 1
    return {i.intent_id: by_cid.get(client_order_id(i.intent_id), 0) for i in intents}


def all_redis_text(client: sync_redis.Redis) -> str:
    """Every key and value in Redis as text (strings, hashes, sets, lists, streams)."""
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts.append(key.decode(errors="replace"))
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = ""
        parts.append(repr(value))
    return "\n".join(parts)


def strand_a_record(
    r: sync_redis.Redis, sim: SimClient, gw: BotfleetProcess, intent: OrderIntent
) -> str:
    """An order request answered 500 without being executed (the record UNKNOWN), then
    the gateway killed and the intent's stream entry lost: nothing is left to finish it."""
    cid = client_order_id(intent.intent_id)
    sim.set_faults(error_rate=1.0)  # every REST answer a 500, nothing executed
    send(r, intent)
    gw.wait_for(lambda: r.hget(keys.order(cid), "status") == b"UNKNOWN", 20, "record UNKNOWN")
    gw.kill()
    sim.clear_faults()
    r.delete(keys.ORDER_INTENTS)  # the entry is gone (trimmed, lost): no consumer will see it
    assert r.sismember(keys.active_orders("live"), cid)
    return cid
