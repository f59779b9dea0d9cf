"""Any market-stream connection takes Binance's live control messages (§2.2), including
one opened on a path that names no stream (ccxt.pro's ``/ws/<number>``)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import websockets

from tests.support.sim import SimClient

RECORDED_BOOK_TICKER = (
    Path(__file__).resolve().parents[2] / "fixtures" / "binance" / "ws_bookticker_bnbusdt.json"
).read_text()


async def _until(ws: Any, predicate: Any, timeout: float = 10.0) -> Any:
    """The first frame matching ``predicate`` within ``timeout`` wall seconds."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        if predicate(frame):
            return frame
    raise AssertionError("no matching frame in time")


async def _control_round(ws: Any, stream: str) -> None:
    await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [stream], "id": 1}))
    assert await _until(ws, lambda f: f.get("id") == 1) == {"result": None, "id": 1}
    await _until(ws, lambda f: f.get("data", f).get("s") == "BTCUSDT")  # raw or combined
    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
    assert stream in (await _until(ws, lambda f: f.get("id") == 2))["result"]
    await ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 3}))
    await _until(ws, lambda f: f.get("id") == 3)
    wrapped = await _until(ws, lambda f: f.get("stream") == stream)
    assert wrapped["data"]["e"] == "kline"
    await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": [stream], "id": 4}))
    await _until(ws, lambda f: f.get("id") == 4)
    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}))
    assert stream not in (await _until(ws, lambda f: f.get("id") == 5))["result"]


async def test_control_messages_on_any_ws_path(sim: SimClient) -> None:
    for path in ("/ws/0", "/ws", "/ws/ethusdt@kline_1m", "/stream", "/ws/some-hash"):
        async with websockets.connect(sim.ws_url + path) as ws:
            await _control_round(ws, "btcusdt@kline_1m")


async def test_ccxt_pro_watches_candles_by_message_subscription(sim: SimClient) -> None:
    import re

    import ccxt.pro

    exchange = ccxt.pro.binance()
    host = f"{sim.host}:{sim.port}"

    def point(urls: Any) -> Any:
        if isinstance(urls, dict):
            return {k: point(v) for k, v in urls.items()}
        if isinstance(urls, str):
            return re.sub(
                r"^(https?|wss?)://[^/]+",
                lambda m: ("ws" if m.group(1).startswith("ws") else "http") + "://" + host,
                urls,
            )
        return urls

    exchange.urls["api"] = point(exchange.urls["api"])
    try:
        seen = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            candles = await asyncio.wait_for(exchange.watch_ohlcv("BTC/USDT", "1m"), 10)
            seen.add(candles[-1][0])
        assert len(seen) >= 2  # at speed 60 a new minute opens every wall second
        ticker = await asyncio.wait_for(exchange.watch_ticker("ETH/USDT"), 10)
        assert ticker["last"] > 0 and ticker["bid"] == ticker["ask"] == ticker["last"]
        books = await asyncio.wait_for(exchange.watch_bids_asks(["BTC/USDT"]), 10)
        assert books["BTC/USDT"]["bid"] == books["BTC/USDT"]["ask"]
    finally:
        await exchange.close()


async def test_ticker_and_book_ticker_streams_have_binances_fields(sim: SimClient) -> None:
    recorded = json.loads(RECORDED_BOOK_TICKER)
    url = sim.ws_url + "/stream?streams=btcusdt@bookTicker/btcusdt@ticker"
    async with websockets.connect(url) as ws:
        book = (await _until(ws, lambda f: f["stream"] == "btcusdt@bookTicker"))["data"]
        ticker = (await _until(ws, lambda f: f["stream"] == "btcusdt@ticker"))["data"]
    assert {k: type(v) for k, v in book.items()} == {k: type(v) for k, v in recorded.items()}
    assert book["b"] == book["a"]
    # §2.4's field list of the 24hrTicker event
    assert list(ticker) == [
        "e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A",
        "o", "h", "l", "v", "q", "O", "C", "F", "L", "n",
    ]  # fmt: skip
    assert ticker["e"] == "24hrTicker" and ticker["c"] == ticker["b"]
