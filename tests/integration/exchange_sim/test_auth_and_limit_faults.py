"""The simulator's faults for the gateway's hard days: an order executed but answered
500 -1001, an API key revoked at run time (401 -2015 on every signed call, the other key
of the account unaffected), and a forced 429 or 418 with Retry-After for a while."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from shared.binance.signing import HmacSigner, signed_query, ws_api_signature_payload
from tests.support.sim import SIM_API_KEY_2, SIM_API_SECRET_2, SimClient


@pytest.fixture(autouse=True)
def _clean_faults(sim: SimClient) -> Iterator[None]:
    sim.clear_faults()
    yield
    sim.clear_faults()


def _signed(
    sim: SimClient, method: str, path: str, *, key: str = "", secret: str = "", **params: Any
) -> httpx.Response:
    query = signed_query(
        params, HmacSigner(secret or sim.api_secret), timestamp=int(time.time() * 1000)
    )
    return httpx.request(
        method,
        f"{sim.rest_url}{path}?{query}",
        headers={"X-MBX-APIKEY": key or sim.api_key},
        timeout=10.0,
    )


def test_an_order_answered_500_minus_1001_was_executed_all_the_same(sim: SimClient) -> None:
    sim.set_faults(order_unknown_rate=1.0, unknown_mode="500")
    resp = _signed(
        sim, "POST", "/api/v3/order",
        symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.0100", newClientOrderId="i500-1",
    )  # fmt: skip
    assert resp.status_code == 500
    assert resp.json()["code"] == -1001
    sim.clear_faults()
    (record,) = sim.orders_with_client_id("i500-1")
    assert record["status"] == "FILLED"


def test_a_revoked_key_gets_2015_on_every_signed_call_and_the_other_key_still_works(
    sim: SimClient,
) -> None:
    assert _signed(sim, "GET", "/api/v3/account").status_code == 200
    sim.revoke(sim.api_key)
    for method, path, params in (
        ("GET", "/api/v3/account", {}),
        ("GET", "/api/v3/openOrders", {}),
        ("POST", "/api/v3/order", {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                                   "quantity": "0.0100", "newClientOrderId": "rev-1"}),
    ):  # fmt: skip
        resp = _signed(sim, method, path, **params)
        assert resp.status_code == 401, path
        assert resp.json() == {
            "code": -2015,
            "msg": "Invalid API-key, IP, or permissions for action.",
        }
    assert sim.orders_with_client_id("rev-1") == []
    other = _signed(sim, "GET", "/api/v3/account", key=SIM_API_KEY_2, secret=SIM_API_SECRET_2)
    assert other.status_code == 200
    listen = httpx.post(
        sim.rest_url + "/api/v3/userDataStream", headers={"X-MBX-APIKEY": sim.api_key}
    )
    assert listen.status_code == 410  # retired for every key (see test_listen_key_*)
    sim.revoke()  # an empty list gives the key back
    assert _signed(sim, "GET", "/api/v3/account").status_code == 200


async def test_a_revoked_key_cannot_subscribe_to_user_data(sim: SimClient) -> None:
    await asyncio.to_thread(sim.revoke, sim.api_key)
    params: dict[str, Any] = {"apiKey": sim.api_key, "timestamp": int(time.time() * 1000)}
    params["signature"] = HmacSigner(sim.api_secret).sign(ws_api_signature_payload(params))
    async with websockets.connect(sim.ws_api_url) as ws:
        await ws.send(
            json.dumps({"id": 1, "method": "userDataStream.subscribe.signature", "params": params})
        )
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["status"] == 401 and reply["error"]["code"] == -2015


@pytest.mark.parametrize(("fault", "status"), [("rate_limit_s", 429), ("ban_s", 418)])
def test_a_forced_limit_answers_every_request_with_retry_after_until_it_ends(
    sim: SimClient, fault: str, status: int
) -> None:
    before = sim.limits()
    sim.set_faults(**{fault: 2})
    resp = httpx.get(sim.rest_url + "/api/v3/time", timeout=10)
    assert resp.status_code == status
    assert resp.json()["code"] == -1003
    assert 1 <= int(resp.headers["Retry-After"]) <= 2
    if status == 418:
        assert "IP banned until" in resp.json()["msg"]
    limits = sim.limits()
    assert limits[f"forced_{status}_until"] > 0
    assert limits[f"answered_{status}"] > before[f"answered_{status}"]
    deadline = time.monotonic() + 10
    while httpx.get(sim.rest_url + "/api/v3/time", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the forced limit never ended"
        time.sleep(0.2)


def test_clearing_the_faults_lifts_a_forced_ban(sim: SimClient) -> None:
    sim.set_faults(ban_s=600)
    assert httpx.get(sim.rest_url + "/api/v3/ping", timeout=10).status_code == 418
    sim.clear_faults()
    assert httpx.get(sim.rest_url + "/api/v3/ping", timeout=10).status_code == 200


def test_bad_forced_limit_values_are_refused(sim: SimClient) -> None:
    resp = httpx.post(sim.rest_url + "/sim/faults", json={"ban_s": -1})
    assert resp.status_code == 400
    assert httpx.get(sim.rest_url + "/api/v3/ping", timeout=10).status_code == 200
