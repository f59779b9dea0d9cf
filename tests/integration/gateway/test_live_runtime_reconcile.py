"""Unknown outcomes and start-up reconciliation, against the simulator as a real process:
an order executed but answered 500 -1001 is found by its client order id (never sent
again); a record the exchange never saw whose intent entry is gone is sent once, or
rejected with the reason when it can no longer be sent; an open ``bf-`` order nobody
here knows is reported, canceled or adopted as the policy says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis

from shared import keys
from shared.binance.signing import HmacSigner, signed_query
from shared.bots import client_order_id
from shared.messages import ExecutionStatus, OrderIntent, Side, decode
from tests.integration.gateway.live_support import (
    gateway_env,
    reports,
    seed_from_sim,
    send,
    sim_orders,
    start_gateway,
    strand_a_record,
    wait_final,
)
from tests.support.processes import BotfleetProcess
from tests.support.sim import SIM_API_KEY, SIM_API_SECRET, SimClient, start_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(tmp_path_factory.mktemp("sim-reconcile"), speed=60.0)
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
        intent_id=f"rec-bot:{tag}:buy",
        bot_id="rec-bot",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.001"),
    )


def differences(client: sync_redis.Redis, cid: str) -> list[dict[str, Any]]:
    out = []
    for _id, fields in client.xrange(keys.EVENTS):
        event = decode(fields)
        details = getattr(event, "details", {})
        if (
            getattr(event, "kind", "") == "reconcile.difference"
            and details.get("client_order_id") == cid
        ):
            out.append({"message": event.message, **details})  # type: ignore[attr-defined]
    return out


def signed(sim: SimClient, method: str, path: str, **params: str) -> httpx.Response:
    query = signed_query(params, HmacSigner(SIM_API_SECRET), timestamp=int(time.time() * 1000))
    return httpx.request(
        method, f"{sim.rest_url}{path}?{query}", headers={"X-MBX-APIKEY": SIM_API_KEY}, timeout=10
    )


def test_an_order_executed_but_answered_500_minus_1001_is_queried_not_sent_again(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    """§6: a 5xx is "execution status unknown" even when its code says "retry"; taking
    -1001 at its word would place the order a second time (the id is free again once
    the first order filled)."""
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url))
    processes.append(gw)
    sim.set_faults(order_unknown_rate=1.0, unknown_mode="500")
    intents = [buy(f"i500-{n}-{time.time_ns()}") for n in range(3)]
    send(r, *intents)
    finals = wait_final(r, intents, gw, timeout=30)
    assert all(len(v) == 1 and v[0].status is ExecutionStatus.FILLED for v in finals.values())
    assert set(sim_orders(sim, intents).values()) == {1}
    assert "order.outcome_unknown" in gw.log_text()


def test_a_stranded_record_the_exchange_never_saw_is_sent_once_and_reported(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    env = gateway_env(sim, clean_redis_url, BOTFLEET_GATEWAY_RECV_WINDOW_MS="1000")
    gw = start_gateway(tmp_path, env)
    processes.append(gw)
    intent = buy(f"orphan-{time.time_ns()}")
    cid = strand_a_record(r, sim, gw, intent)
    assert sim_orders(sim, [intent])[intent.intent_id] == 0
    gw.start()
    finals = wait_final(r, [intent], gw, timeout=30)
    assert [x.status for x in finals[intent.intent_id]] == [ExecutionStatus.FILLED]
    assert sim_orders(sim, [intent])[intent.intent_id] == 1
    assert r.hget(keys.order(cid), "status") == b"FILLED"
    gw.wait_for(
        lambda: not r.sismember(keys.active_orders("live"), cid), 10, "record no longer active"
    )
    [first, *_rest] = differences(r, cid)
    assert "intent entry is gone" in str(first["message"])


def test_a_stranded_record_that_can_no_longer_be_sent_is_rejected_with_the_reason(
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    env = gateway_env(sim, clean_redis_url, BOTFLEET_GATEWAY_RECV_WINDOW_MS="1000")
    gw = start_gateway(tmp_path, env)
    processes.append(gw)
    intent = buy(f"orphan-rej-{time.time_ns()}")
    cid = strand_a_record(r, sim, gw, intent)
    r.hdel(keys.EXCHANGE_SYMBOLS, "BTCUSDT")  # delisted meanwhile: it cannot be sent
    gw.start()
    finals = wait_final(r, [intent], gw, timeout=30)
    [report] = finals[intent.intent_id]
    assert report.status is ExecutionStatus.REJECTED
    assert "unknown symbol BTCUSDT" in report.reason
    assert sim_orders(sim, [intent])[intent.intent_id] == 0
    assert not r.sismember(keys.active_orders("live"), cid)


@pytest.mark.parametrize("policy", ["report", "cancel", "adopt"])
def test_an_unknown_open_bf_order_follows_the_policy(
    policy: str,
    r: sync_redis.Redis,
    sim: SimClient,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    price = Decimal(
        httpx.get(sim.rest_url + "/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).json()[
            "price"
        ]
    )
    far = str((price * Decimal("0.5")).quantize(Decimal("0.01")))  # rests for the test
    cid = client_order_id(f"stray:{policy}:{time.time_ns()}:buy")
    placed = signed(
        sim, "POST", "/api/v3/order",
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.00100",
        price=far, newClientOrderId=cid,
    )  # fmt: skip
    assert placed.status_code == 200, placed.text
    try:
        env = gateway_env(sim, clean_redis_url, BOTFLEET_GATEWAY_UNKNOWN_ORDER_POLICY=policy)
        gw = start_gateway(tmp_path, env, f"gw-{policy}")
        processes.append(gw)
        gw.wait_for(lambda: differences(r, cid) != [], 20, "the difference reported")
        [event] = differences(r, cid)
        assert event["policy"] == policy
        venue = signed(sim, "GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId=cid)
        if policy == "report":
            assert event["action"] == "reported"
            assert venue.json()["status"] == "NEW"
            assert not r.exists(keys.order(cid))
        elif policy == "cancel":
            assert event["action"] == "canceled"
            assert venue.json()["status"] == "CANCELED"
        else:
            assert event["action"] == "adopted"
            assert venue.json()["status"] == "NEW"
            gw.wait_for(lambda: r.sismember(keys.open_orders("live"), cid), 10, "followed")
            [opened] = [x for x in reports(r) if x.client_order_id == cid]
            assert opened.intent_id == f"adopted:{cid}" and not opened.final
            # it ends on the exchange: the follower publishes its one final report
            assert (
                signed(
                    sim, "DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId=cid
                ).status_code
                == 200
            )
            gw.wait_for(
                lambda: any(x.final for x in reports(r) if x.client_order_id == cid),
                20,
                "the adopted order's final report",
            )
            finals = [x for x in reports(r) if x.client_order_id == cid and x.final]
            assert [x.status for x in finals] == [ExecutionStatus.CANCELED]
        assert len(sim.orders_with_client_id(cid)) == 1  # nothing placed by the gateway
    finally:
        signed(sim, "DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId=cid)
