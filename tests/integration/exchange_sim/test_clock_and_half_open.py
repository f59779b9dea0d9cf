"""Two faults a client must survive: an exchange clock that is not its own (timestamps
checked against the exchange clock only, as Binance does) and a half-open connection
(the socket stays open; no frame, no ping, no pong comes back)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import websockets

from shared.binance.signing import HmacSigner, signed_query
from tests.support.sim import SimClient, SimFactory


def _account(sim: SimClient, timestamp: int) -> httpx.Response:
    query = signed_query({"timestamp": timestamp, "recvWindow": 5000}, HmacSigner(sim.api_secret))
    return httpx.get(
        f"{sim.rest_url}/api/v3/account?{query}",
        headers={"X-MBX-APIKEY": sim.api_key},
        timeout=10.0,
    )


def test_a_clock_offset_shows_a_client_that_does_not_sync(sim_factory: SimFactory) -> None:
    sim = sim_factory(speed=1.0, symbols=["BTCUSDT"])
    assert _account(sim, int(time.time() * 1000)).status_code == 200
    sim.set_faults(clock_offset_ms=10_000)
    skew = sim.server_time() - int(time.time() * 1000)
    assert 9_000 < skew < 11_000
    stale = _account(sim, int(time.time() * 1000))  # the client's own clock
    assert stale.status_code == 400
    assert stale.json() == {
        "code": -1021,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    }
    assert _account(sim, sim.server_time()).status_code == 200  # synced with /time
    sim.set_faults(clock_offset_ms=-10_000)
    ahead = _account(sim, int(time.time() * 1000))
    assert ahead.json()["msg"] == (
        "Timestamp for this request was 1000ms ahead of the server's time."
    )
    sim.clear_faults()
    assert abs(sim.server_time() - int(time.time() * 1000)) < 1000
    assert _account(sim, int(time.time() * 1000)).status_code == 200


def test_a_sped_up_clock_checks_only_the_exchange_clock_under_an_offset(sim: SimClient) -> None:
    """At speed 60 a wall-clock timestamp passes (clients cannot stamp with a sped-up
    clock), until a clock offset asks for Binance's exact rule."""
    sim.clear_faults()
    assert _account(sim, int(time.time() * 1000)).status_code == 200
    sim.set_faults(clock_offset_ms=1)
    try:
        assert _account(sim, int(time.time() * 1000)).json()["code"] == -1021
    finally:
        sim.clear_faults()


async def _next(ws: Any, timeout: float) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_a_half_open_connection_sends_nothing_and_stays_open(
    sim_factory: SimFactory,
) -> None:
    sim = await asyncio.to_thread(
        sim_factory, symbols=["BTCUSDT"], extra_args=["--ws-ping-interval", "0.3"]
    )
    url = sim.ws_url + "/ws/btcusdt@kline_1m"
    async with (
        websockets.connect(url, ping_interval=None) as silent,
        websockets.connect(sim.ws_api_url, ping_interval=None) as api,
    ):
        await _next(silent, 10)  # it streams
        await asyncio.to_thread(sim.set_faults, half_open=True)
        async with websockets.connect(url, ping_interval=None) as fresh:
            # Positive sign: a connection opened after the fault gets several seconds'
            # events (and the simulator several pings, which would have closed a
            # connection that does not answer, past three intervals).
            first = (await _next(fresh, 10))["E"]
            while (await _next(fresh, 10))["E"] < first + 120_000:  # 2 s of wall time
                pass
        # Whatever was queued before the fault may still arrive; nothing after it.
        late = []
        while True:
            try:
                late.append(await _next(silent, 0.2))
            except TimeoutError:
                break
        assert all(f["E"] < first for f in late)
        pong = await silent.ping()
        await api.send(json.dumps({"id": 1, "method": "ping"}))
        for waiter in (pong, api.recv()):
            try:
                await asyncio.wait_for(waiter, 1.0)
                raise AssertionError("a half-open connection answered")
            except TimeoutError:
                pass
        assert silent.state.name == "OPEN" and api.state.name == "OPEN"
