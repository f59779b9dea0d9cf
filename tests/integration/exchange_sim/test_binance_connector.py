"""Binance's own connector (``binance-connector``) against the simulator, unchanged:
REST, market streams and the WebSocket API (market data and trading), with the
WS API's request/response shapes and ``rateLimits``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from binance.spot import Spot
from binance.websocket.spot.websocket_api import SpotWebsocketAPIClient
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

from tests.support.sim import SimClient


class Inbox:
    """Messages a connector client receives on its own thread."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = threading.Condition()

    def __call__(self, _: object, message: str) -> None:
        with self._changed:
            self.items.append(json.loads(message))
            self._changed.notify_all()

    def wait(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message; got {self.items[-3:]}")
                self._changed.wait(left)


@pytest.fixture
def ws_api(sim: SimClient) -> Iterator[tuple[SpotWebsocketAPIClient, Inbox]]:
    inbox = Inbox()
    client = SpotWebsocketAPIClient(
        stream_url=sim.ws_api_url,
        api_key=sim.api_key,
        api_secret=sim.api_secret,
        on_message=inbox,
    )
    yield client, inbox
    client.stop()


def test_rest_market_data_orders_and_account(sim: SimClient) -> None:
    client = Spot(api_key=sim.api_key, api_secret=sim.api_secret, base_url=sim.rest_url)
    assert float(client.ticker_24hr("BTCUSDT")["lastPrice"]) > 0
    assert client.depth("BTCUSDT", limit=5)["bids"]
    assert len(client.agg_trades("BTCUSDT", limit=3)) == 3
    assert len(client.trades("BTCUSDT", limit=3)) == 3
    assert client.book_ticker("BTCUSDT")["symbol"] == "BTCUSDT"
    assert client.avg_price("BTCUSDT")["mins"] == 5
    order = client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.00100")
    assert order["status"] == "FILLED"
    assert client.get_order("BTCUSDT", orderId=order["orderId"])["status"] == "FILLED"
    assert order["orderId"] in {t["orderId"] for t in client.my_trades("BTCUSDT")}
    assert client.account()["balances"]


def test_market_streams(sim: SimClient) -> None:
    inbox = Inbox()
    client = SpotWebsocketStreamClient(stream_url=sim.ws_url, on_message=inbox)
    try:
        client.kline(symbol="btcusdt", interval="1m")
        event = inbox.wait(lambda m: m.get("e") == "kline")
        assert event["s"] == "BTCUSDT" and event["k"]["i"] == "1m"
    finally:
        client.stop()


def test_ws_api_market_data(ws_api: tuple[SpotWebsocketAPIClient, Inbox]) -> None:
    client, inbox = ws_api
    calls: list[tuple[Callable[..., Any], dict[str, Any], Callable[[Any], bool]]] = [
        (client.ticker_price, {"symbol": "BTCUSDT"}, lambda r: r["symbol"] == "BTCUSDT"),
        (client.klines, {"symbol": "BTCUSDT", "interval": "1m", "limit": 2}, lambda r: len(r) == 2),
        (client.order_book, {"symbol": "BTCUSDT", "limit": 5}, lambda r: bool(r["bids"])),
        (client.ticker_24hr, {"symbol": "BTCUSDT"}, lambda r: "priceChangePercent" in r),
        (client.ticker_book, {"symbol": "BTCUSDT"}, lambda r: r["bidPrice"] == r["askPrice"]),
        (client.avg_price, {"symbol": "BTCUSDT"}, lambda r: r["mins"] == 5),
        (client.recent_trades, {"symbol": "BTCUSDT", "limit": 3}, lambda r: len(r) == 3),
        (client.aggregate_trades, {"symbol": "BTCUSDT", "limit": 3}, lambda r: len(r) == 3),
        (client.exchange_info, {"symbol": "BTCUSDT"}, lambda r: len(r["symbols"]) == 1),
    ]
    for call, params, check in calls:
        before = len(inbox.items)
        call(**params)
        reply = inbox.wait(lambda m, n=before: inbox.items.index(m) >= n and "status" in m)
        assert reply["status"] == 200, (call.__name__, reply)
        assert check(reply["result"]), call.__name__
        (weight,) = reply["rateLimits"]
        assert weight["rateLimitType"] == "REQUEST_WEIGHT" and weight["count"] > 0


def test_ws_api_trading(sim: SimClient, ws_api: tuple[SpotWebsocketAPIClient, Inbox]) -> None:
    client, inbox = ws_api

    def reply_to(call: Callable[..., Any], **params: Any) -> Any:
        before = len(inbox.items)
        call(**params)
        return inbox.wait(lambda m: inbox.items.index(m) >= before and "status" in m)

    placed = reply_to(
        client.new_order, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
        quantity="0.01000", price="1000.00", newClientOrderId="bc-ws-1",
    )  # fmt: skip
    assert placed["status"] == 200, placed
    assert placed["result"]["status"] == "NEW"
    kinds = {(r["rateLimitType"], r["interval"]) for r in placed["rateLimits"]}
    assert {("REQUEST_WEIGHT", "MINUTE"), ("ORDERS", "SECOND"), ("ORDERS", "DAY")} <= kinds
    status = reply_to(client.get_order, symbol="BTCUSDT", origClientOrderId="bc-ws-1")
    assert status["result"]["orderId"] == placed["result"]["orderId"]
    open_orders = reply_to(client.get_open_orders, symbol="BTCUSDT")["result"]
    assert "bc-ws-1" in {o["clientOrderId"] for o in open_orders}
    canceled = reply_to(client.cancel_order, symbol="BTCUSDT", origClientOrderId="bc-ws-1")
    assert canceled["result"]["status"] == "CANCELED"
    account = reply_to(client.account)["result"]
    assert any(b["asset"] == "USDT" for b in account["balances"])
    market = reply_to(
        client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.00100"
    )
    assert market["result"]["status"] == "FILLED" and market["result"]["fills"]
    (record,) = sim.orders_with_client_id("bc-ws-1")
    assert record["status"] == "CANCELED"
    missing = reply_to(client.get_order, symbol="BTCUSDT", origClientOrderId="nope")
    assert missing["status"] == 400 and missing["error"]["code"] == -2013


def test_ws_api_rate_limit_errors_carry_retry_after_as_epoch_ms(sim: SimClient) -> None:
    from websockets.sync.client import connect

    with connect(sim.ws_api_url) as ws:  # connecting costs weight too: before the fault
        sim.set_faults(rate_limit_s=5)
        try:
            ws.send(
                json.dumps({"id": "t1", "method": "ticker.price", "params": {"symbol": "BTCUSDT"}})
            )
            reply = json.loads(ws.recv(timeout=10))
        finally:
            sim.clear_faults()
    assert reply["status"] == 429 and reply["error"]["code"] == -1003
    data = reply["error"]["data"]
    assert data["retryAfter"] > data["serverTime"]
    assert reply["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    # the recorded shape of Binance's WS-API rate-limit error (tests/fixtures/binance)
    recorded = json.loads(
        (
            Path(__file__).resolve().parents[2] / "fixtures/binance/wsapi_error_ipbanned.json"
        ).read_text()
    )
    assert _shape(reply) == _shape(recorded)


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__
