"""Bans and rate-limit pauses, against the simulator as a real process: while the
exchange answers 418 (or 429) the gateway's health says ``banned until <ISO>`` (``rate
limited until <ISO>``) with the deadline, an event marks the start and the end, and the
intent that met it is placed once when requests resume."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
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
from tests.support.sim import SimClient, start_sim

PAUSE_S = 4


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(tmp_path_factory.mktemp("sim-limits"), speed=60.0)
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


def kinds(client: sync_redis.Redis) -> list[str]:
    return [str(getattr(decode(f), "kind", "")) for _id, f in client.xrange(keys.EVENTS)]


@pytest.mark.parametrize(
    ("fault", "started", "ended", "says", "ok"),
    [
        ("ban_s", "exchange.banned", "exchange.ban_lifted", "banned until ", b"0"),
        ("rate_limit_s", "exchange.rate_limited", "exchange.rate_limit_lifted",
         "rate limited until ", b"1"),
    ],
    ids=["418-ban", "429-pause"],
)  # fmt: skip
def test_health_shows_the_deadline_of_a_ban_or_pause_and_events_mark_its_start_and_end(
    fault: str,
    started: str,
    ended: str,
    says: str,
    ok: bytes,
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url))
    processes.append(gw)
    health = keys.health("gateway", "gw-test")
    gw.wait_for(lambda: r.hget(health, "exchange") == b"connected", 15, "exchange connected")
    sim.set_faults(**{fault: PAUSE_S})
    began = time.time()
    intent = OrderIntent(
        intent_id=f"lim-bot:{fault}-{time.time_ns()}:buy",
        bot_id="lim-bot",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.001"),
    )
    send(r, intent)  # its order request meets the 418 / 429
    gw.wait_for(lambda: (r.hget(health, "exchange") or b"").decode().startswith(says), 15, says)
    text = r.hget(health, "exchange").decode()  # type: ignore[union-attr]
    deadline = datetime.strptime(text.removeprefix(says), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert began - 1 <= deadline.timestamp() <= began + PAUSE_S + 2
    assert r.hget(health, "ok") == ok
    assert started in kinds(r)
    assert ended not in kinds(r)
    # it ends by itself: the health says so, an event marks it, the order goes out once
    gw.wait_for(lambda: ended in kinds(r), PAUSE_S + 15, ended)
    gw.wait_for(lambda: r.hget(health, "exchange") == b"connected", 10, "connected again")
    assert r.hget(health, "ok") == b"1"
    finals = wait_final(r, [intent], gw, timeout=30)
    assert [x.status for x in finals[intent.intent_id]] == [ExecutionStatus.FILLED]
    assert sim_orders(sim, [intent])[intent.intent_id] == 1
    assert kinds(r).count(started) == 1 and kinds(r).count(ended) == 1


def test_two_gateways_taking_delayed_intents_from_each_other_never_give_them_up(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    """While the fleet's budget holds orders back, each gateway's delayed entries sit idle
    in its pending list and the other gateway claims them (XAUTOCLAIM counts each claim as
    a delivery). Handled without failing, none of those is a poison pill: every intent is
    placed once when the pause ends, none is dead-lettered."""
    max_deliveries = 3
    gateways = []
    for name in ("gw-a", "gw-b"):
        env = gateway_env(
            sim,
            clean_redis_url,
            BOTFLEET_INSTANCE=name,
            BOTFLEET_GATEWAY_CLAIM_IDLE_MS="200",
            BOTFLEET_GATEWAY_MAX_DELIVERIES=str(max_deliveries),
        )
        gateways.append(start_gateway(tmp_path, env, name))
        processes.append(gateways[-1])
    # the fleet-wide pause a 429 would set (shared.ratelimit): every order is delayed
    pause_ms = 10_000
    until = int(time.time() * 1000) + pause_ms
    r.set(keys.RATELIMIT_BAN, until, px=pause_ms + 1000)
    tag = time.time_ns()
    intents = [
        OrderIntent(
            intent_id=f"delay-bot:{tag}-{n}:buy",
            bot_id="delay-bot",
            epoch=1,
            symbol="BTCUSDT",
            side=Side.BUY,
            quantity=Decimal("0.001"),
        )
        for n in range(6)
    ]
    send(r, *intents)

    def claims() -> int:
        return sum(gw.log_text().count('"intents.claimed"') for gw in gateways)

    # the ping-pong happened: more claims than the delivery limit, while still paused
    gateways[0].wait_for(lambda: claims() > max_deliveries + 1, pause_ms / 1000, "claims")
    assert time.time() * 1000 < until, "the pause ended before the gateways claimed enough"
    finals = wait_final(r, intents, gateways[0], timeout=pause_ms / 1000 + 30)
    assert {i: [x.status for x in v] for i, v in finals.items()} == {
        i.intent_id: [ExecutionStatus.FILLED] for i in intents
    }
    assert r.xlen(keys.DEAD_LETTER) == 0
    assert sim_orders(sim, intents) == {i.intent_id: 1 for i in intents}
