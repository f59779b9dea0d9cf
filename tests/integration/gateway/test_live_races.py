"""Two live gateway processes against a simulator slowed past their HTTP timeout, with
reclaims forced (claim and retry idle of 300 ms) and the CPU loaded on purpose: every
order is in flight long enough for the other process (and the same process's retry
pass) to take its entry up again. The order records' compare-and-set and the in-flight
set must still place each client order id once, end each intent in one final report,
and report every fill the simulator made."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis as sync_redis

from shared.bots import client_order_id
from shared.messages import ExecutionReport, OrderIntent, Side
from tests.integration.gateway.live_support import (
    gateway_env,
    reports,
    seed_from_sim,
    send,
    start_gateway,
)
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient, start_sim

N = 200
HTTP_TIMEOUT_S = 1.0
SLOW_MS = 1600  # past the gateway's HTTP timeout: every order's answer is lost


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    # budgets wide enough that the test is about races, not about the rate limits
    client = start_sim(
        tmp_path_factory.mktemp("sim-races"),
        speed=60.0,
        extra_args=["--weight-limit", "200000", "--orders-per-10s", "100000"],
    )
    yield client
    client.stop()


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Two busy loops for the test's duration (the bug showed at load ~5 on 2 cores)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _finals(r: sync_redis.Redis) -> dict[str, list[ExecutionReport]]:
    out: dict[str, list[ExecutionReport]] = {}
    for report in reports(r):
        if report.final:
            out.setdefault(report.intent_id, []).append(report)
    return out


def test_two_gateways_with_forced_reclaims_place_each_intent_once(
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
    cpu_load: None,
) -> None:
    sim.clear_faults()
    r = sync_redis.Redis.from_url(clean_redis_url)
    seed_from_sim(r, sim)
    extra = {
        "BOTFLEET_GATEWAY_CLAIM_IDLE_MS": "300",
        "BOTFLEET_GATEWAY_RETRY_IDLE_MS": "300",
        "BOTFLEET_GATEWAY_HTTP_TIMEOUT_S": str(HTTP_TIMEOUT_S),
        # "no such order" allows a resend 4 s after sending (not 6): more resends race
        "BOTFLEET_GATEWAY_RECV_WINDOW_MS": "3000",
        "BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN": "0",
        "BOTFLEET_GATEWAY_FLEET_ORDERS_PER_MIN": "0",
        "BOTFLEET_GATEWAY_BREAKER_FAILURES": "100000",
        "BOTFLEET_GATEWAY_USER_STREAM": "false",
        "BOTFLEET_LOG_LEVEL": "info",
    }
    gateways = []
    for name in ("gw-a", "gw-b"):
        env = gateway_env(sim, clean_redis_url, **extra)
        env["BOTFLEET_INSTANCE"] = name
        gw = start_gateway(tmp_path, env, name)
        processes.append(gw)
        gateways.append(gw)
    tag = time.time_ns()
    intents = [
        OrderIntent(
            intent_id=f"race-{n % 10}:{tag}-{n}:buy",
            bot_id=f"race-{n % 10}",
            epoch=1,
            symbol="BTCUSDT",
            side=Side.BUY,
            quantity=Decimal("0.001"),
        )
        for n in range(N)
    ]
    # Slow first: the orders land on the simulator after the gateways gave up waiting,
    # so the entries are taken up again while their orders are in flight or unknown.
    sim.set_faults(latency_ms=SLOW_MS)
    send(r, *intents[: N // 2])
    gateways[0].wait_for(
        lambda: len(sim.orders()) >= N // 4, 30, "orders reaching the slowed simulator"
    )
    # Then fast but failing: a share of requests answered 500 without being executed,
    # a share of orders executed but answered 500 -- unknown outcomes, queries that
    # fail, and resends (once "no such order" is proven) raced by both gateways.
    sim.set_faults(latency_ms=0, error_rate=0.3, order_unknown_rate=0.2, unknown_mode="500")
    send(r, *intents[N // 2 :])
    gateways[0].wait_for(lambda: len(sim.orders()) >= 3 * N // 4, 30, "more orders landing")
    deadline = time.monotonic() + 5  # failing for a while (no condition to wait for)
    gateways[0].wait_for(lambda: time.monotonic() > deadline, 10, "the failing phase")
    sim.clear_faults()  # now the queries can settle them
    wanted = {i.intent_id for i in intents}
    gateways[0].wait_for(lambda: set(_finals(r)) >= wanted, 45, "a final report per intent")
    for gw in gateways:
        gw.stop()  # stopped: nothing more can be published
    assert all(not gw.alive() for gw in gateways)

    placed: dict[str, list[dict[str, str]]] = {}
    for order in sim.orders():
        placed.setdefault(order["clientOrderId"], []).append(order)
    cids = {client_order_id(i.intent_id): i.intent_id for i in intents}
    twice = [cid for cid in cids if len(placed.get(cid, [])) > 1]
    assert twice == [], f"placed twice: {twice}"
    finals = _finals(r)
    assert {k: len(v) for k, v in finals.items() if len(v) != 1} == {}
    # every fill the simulator made is in the intent's one final report
    for cid, intent_id in cids.items():
        [report] = finals[intent_id]
        orders = placed.get(cid, [])
        executed = sum((Decimal(o["executedQty"]) for o in orders), Decimal(0))
        assert report.executed_qty == executed, (cid, report.status, report.reason, orders)
    r.close()
