"""Market streams of the simulator as a websockets client sees them."""

from __future__ import annotations

import asyncio
import json
import time
from itertools import pairwise
from typing import Any

import httpx
import pytest
import websockets

from tests.support.sim import SimClient, SimFactory

SPEED = 600.0  # a 1m candle closes every 0.1 s of wall time


@pytest.fixture(scope="module")
def fast_sim(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.support.sim import start_sim

    client = start_sim(tmp_path_factory.mktemp("sim-fast"), speed=SPEED)
    yield client
    client.stop()


async def _collect(
    url: str, wall_seconds: float, send: list[dict[str, Any]] | None = None
) -> list[Any]:
    out: list[Any] = []
    async with websockets.connect(url, max_size=None) as ws:
        for msg in send or []:
            await ws.send(json.dumps(msg))
        deadline = time.monotonic() + wall_seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
            except TimeoutError:
                break
    return out


async def test_klines_close_on_schedule_and_match_rest(fast_sim: SimClient) -> None:
    frames = await _collect(fast_sim.ws_url + "/ws/btcusdt@kline_1m", 2.0)
    closed = [f["k"] for f in frames if f["k"]["x"]]
    # 2 s of wall time at speed 600 is 20 exchange minutes: every minute closes, in order.
    assert len(closed) >= 10
    opens = [k["t"] for k in closed]
    assert all(b - a == 60_000 for a, b in pairwise(opens))
    assert all(f["E"] == f["k"]["T"] + 1 for f in frames if f["k"]["x"])
    # an update every exchange second while a candle is open (a stalled engine loop on
    # a loaded machine may space some out: the unit tests pin the exact rule)
    updates = [f["E"] for f in frames if not f["k"]["x"]]
    gaps = sorted(b - a for a, b in pairwise(updates))
    assert gaps[0] > 0 and gaps[len(gaps) // 2] == 1000
    async with httpx.AsyncClient(base_url=fast_sim.rest_url) as client:
        for k in closed:
            resp = await client.get(
                "/api/v3/klines",
                params={"symbol": "BTCUSDT", "interval": "1m", "startTime": k["t"], "limit": 1},
            )
            assert resp.json()[0] == [
                k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"], "0",
            ]  # fmt: skip


async def test_a_client_subscribing_after_a_pause_gets_live_events_only(
    fast_sim: SimClient,
) -> None:
    """Streams never replay: after its last subscriber left and 10 exchange minutes
    passed, a new subscriber gets nothing older than the current candle."""
    url = fast_sim.ws_url + "/stream?streams=bnbusdt@kline_1m"
    assert await _collect(url, 0.3)  # the stream existed, then its last subscriber left
    await asyncio.sleep(1.0)  # 10 exchange minutes at speed 600
    async with httpx.AsyncClient(base_url=fast_sim.rest_url) as client:
        now = (await client.get("/api/v3/time")).json()["serverTime"]
    frames = await _collect(url + "/bnbusdt@kline_15m", 0.5)
    events = [f["data"] for f in frames]
    assert {f["stream"] for f in frames} == {"bnbusdt@kline_1m", "bnbusdt@kline_15m"}
    for event in events:
        step = 60_000 if event["k"]["i"] == "1m" else 900_000
        assert event["k"]["t"] >= now - now % step  # the candle open at subscription, or later
        assert event["E"] > now


async def test_combined_stream_wraps_payloads_and_control_messages_answer(
    fast_sim: SimClient,
) -> None:
    url = fast_sim.ws_url + "/stream?streams=ethusdt@kline_5m"
    frames = await _collect(
        url,
        1.0,
        send=[
            {"method": "SUBSCRIBE", "params": ["bnbusdt@miniTicker"], "id": 1},
            {"method": "LIST_SUBSCRIPTIONS", "id": 2},
            {"method": "SUBSCRIBE", "params": ["nope@kline_1m"], "id": 3},
            {"method": "FLY", "id": 4},
        ],
    )
    replies = {f["id"]: f for f in frames if "id" in f}
    assert replies[1] == {"result": None, "id": 1}
    assert replies[2] == {"result": ["bnbusdt@miniTicker", "ethusdt@kline_5m"], "id": 2}
    assert replies[3]["error"]["code"] == 2
    assert replies[4]["error"]["code"] == 2
    data = [f for f in frames if "stream" in f]
    assert {f["stream"] for f in data} == {"ethusdt@kline_5m", "bnbusdt@miniTicker"}
    assert all(f["data"]["e"] in ("kline", "24hrMiniTicker") for f in data)


async def test_more_than_five_messages_a_second_disconnect(fast_sim: SimClient) -> None:
    async with websockets.connect(fast_sim.ws_url + "/ws") as ws:
        for i in range(7):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(20):
                await asyncio.wait_for(ws.recv(), 2.0)


def test_the_same_seed_gives_identical_candles_twice(sim_factory: SimFactory) -> None:
    start = "2026-01-01T00:00:00Z"
    args = ["--start-time", start, "--history-days", "30"]
    a = sim_factory(speed=1.0, symbols=["BTCUSDT"], seed=42, extra_args=args)
    b = sim_factory(speed=1.0, symbols=["BTCUSDT"], seed=42, extra_args=args)
    c = sim_factory(speed=1.0, symbols=["BTCUSDT"], seed=43, extra_args=args)
    params = {"symbol": "BTCUSDT", "interval": "1m", "endTime": 1767225599999, "limit": 1000}
    rows = [httpx.get(s.rest_url + "/api/v3/klines", params=params).json() for s in (a, b, c)]
    assert len(rows[0]) == 1000
    assert rows[0] == rows[1]
    assert rows[0] != rows[2]


async def test_a_client_that_never_answers_pings_is_disconnected(sim_factory: SimFactory) -> None:
    sim = await asyncio.to_thread(
        sim_factory, speed=60.0, symbols=["BTCUSDT"], extra_args=["--ws-ping-interval", "0.2"]
    )
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    writer.write(
        b"GET /ws/btcusdt@kline_1m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in head
    # never answer: the server pings every 0.2 s and gives up after 3 intervals
    data = b""
    while chunk := await asyncio.wait_for(reader.read(1 << 16), 5.0):
        data += chunk
    writer.close()
    assert b"\x89" in data  # ping frames were sent
    assert b"Pong timeout" in data  # the close frame says why


def test_at_speed_one_the_exchange_clock_is_the_wall_clock(sim_factory: SimFactory) -> None:
    """Clients budget weight per real minute; the simulator's minutes must be those
    minutes, however long it took to build its market before serving."""
    sim = sim_factory(speed=1.0, symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"])
    for _ in range(3):
        before = time.time() * 1000
        server = httpx.get(f"{sim.rest_url}/api/v3/time", timeout=5).json()["serverTime"]
        after = time.time() * 1000
        assert before - 50 <= server <= after + 50
