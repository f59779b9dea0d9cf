"""Refused credentials, against the simulator as a real process: a live gateway whose key
or secret the exchange refuses does not start (a clear message, no traceback, no secret);
a key revoked while it runs puts that gateway on hold (health says why and fails, it
takes no intents) while a gateway with a good key places every intent once, and the
first gateway resumes by itself once the key works again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis as sync_redis

from shared import keys
from shared.messages import ExecutionStatus, OrderIntent, Side, decode
from tests.integration.gateway.live_support import (
    gateway_env,
    seed_from_sim,
    send,
    sim_orders,
    start_gateway,
    wait_final,
)
from tests.support.processes import BotfleetProcess
from tests.support.sim import SIM_API_KEY, SIM_API_SECRET, SimClient, start_sim

WRONG_SECRET = "wrongsecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(tmp_path_factory.mktemp("sim-auth"), speed=60.0)
    yield client
    client.stop()


@pytest.fixture
def r(clean_redis_url: str, sim: SimClient) -> Iterator[sync_redis.Redis]:
    sim.clear_faults()
    client = sync_redis.Redis.from_url(clean_redis_url)
    seed_from_sim(client, sim)
    yield client
    client.close()
    sim.clear_faults()


def buy(tag: str) -> OrderIntent:
    return OrderIntent(
        intent_id=f"auth-bot:{tag}:buy",
        bot_id="auth-bot",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.001"),
    )


def events(client: sync_redis.Redis, kind: str) -> list[dict[str, object]]:
    out = []
    for _id, fields in client.xrange(keys.EVENTS):
        event = decode(fields)
        if getattr(event, "kind", None) == kind:
            out.append({"message": event.message, **event.details})  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize(
    ("case", "code", "names"),
    [("wrong-secret", "-1022", "BOTFLEET_BINANCE_API_SECRET"), ("revoked-key", "-2015", "API_KEY")],
)
def test_refused_credentials_refuse_a_live_start_with_a_clear_message(
    case: str,
    code: str,
    names: str,
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    env = gateway_env(sim, clean_redis_url)
    if case == "wrong-secret":
        env["BOTFLEET_BINANCE_API_SECRET"] = WRONG_SECRET
    else:
        sim.revoke(SIM_API_KEY)
    gw = BotfleetProcess(["gateway"], tmp_path / f"gw-{case}.log", env).start()
    processes.append(gw)
    assert gw.proc is not None
    assert gw.proc.wait(timeout=30) != 0  # it exits by itself, with a failure status
    out = gw.log_text()
    assert "refused the API credentials" in out and code in out and names in out
    assert "Traceback" not in out
    assert WRONG_SECRET not in out and SIM_API_SECRET not in out and SIM_API_KEY not in out
    # it never joined: no heartbeat, no consumer in the group
    assert not r.exists(keys.health("gateway", env["BOTFLEET_INSTANCE"]))
    if r.exists(keys.ORDER_INTENTS):
        for group in r.xinfo_groups(keys.ORDER_INTENTS):
            assert group["consumers"] == 0


def test_a_key_revoked_at_run_time_holds_that_gateway_while_another_places_every_intent(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    env_a = gateway_env(
        sim,
        clean_redis_url,
        BOTFLEET_INSTANCE="gw-a",
        BOTFLEET_GATEWAY_AUTH_PROBE_MAX_S="1",
        BOTFLEET_GATEWAY_USER_STREAM="false",
    )
    gw_a = start_gateway(tmp_path, env_a, "gw-a")
    processes.append(gw_a)
    health_a = keys.health("gateway", "gw-a")
    gw_a.wait_for(lambda: r.hget(health_a, "ok") == b"1", 15, "gw-a healthy")
    tag = time.time_ns()
    warm = buy(f"warm-{tag}")
    send(r, warm)
    wait_final(r, [warm], gw_a)

    sim.revoke(SIM_API_KEY)
    first = [buy(f"rev-{n}-{tag}") for n in range(3)]
    send(r, *first)  # gw-a alone reads them: its orders are refused 401 -2015
    gw_a.wait_for(
        lambda: r.hget(health_a, "exchange") == b"auth_failed", 20, "gw-a health auth_failed"
    )
    assert r.hget(health_a, "ok") == b"0"
    assert b"-2015" in (r.hget(health_a, "exchange_reason") or b"")
    assert SIM_API_KEY.encode() not in (r.hget(health_a, "exchange_reason") or b"")
    gw_a.wait_for(lambda: events(r, "exchange.auth_failed") != [], 10, "auth_failed event")
    assert sim_orders(sim, first) == {i.intent_id: 0 for i in first}
    assert not [x for x in r.xrange(keys.EXECUTIONS) if b"rev-" in x[1][b"data"]]

    # a gateway with the account's other key takes over the held entries and new ones
    env_b = gateway_env(sim, clean_redis_url, BOTFLEET_INSTANCE="gw-b")
    env_b.update(sim.env(second_key=True))
    gw_b = start_gateway(tmp_path, env_b, "gw-b")
    processes.append(gw_b)
    second = [buy(f"rev2-{n}-{tag}") for n in range(3)]
    send(r, *second)
    finals = wait_final(r, first + second, gw_b, timeout=40)
    assert all(len(v) == 1 and v[0].status is ExecutionStatus.FILLED for v in finals.values())
    assert set(sim_orders(sim, first + second).values()) == {1}
    assert r.hget(health_a, "exchange") == b"auth_failed"  # still held: the key is revoked

    # the key works again: gw-a resumes by itself and trades
    sim.revoke()
    gw_a.wait_for(lambda: r.hget(health_a, "ok") == b"1", 20, "gw-a healthy again")
    assert r.hget(health_a, "exchange") == b"connected"
    gw_a.wait_for(lambda: events(r, "exchange.auth_restored") != [], 10, "auth_restored event")
    gw_b.stop()
    third = [buy(f"back-{n}-{tag}") for n in range(2)]
    send(r, *third)
    finals = wait_final(r, third, gw_a, timeout=30)
    assert all(len(v) == 1 and v[0].status is ExecutionStatus.FILLED for v in finals.values())
    assert set(sim_orders(sim, third).values()) == {1}
