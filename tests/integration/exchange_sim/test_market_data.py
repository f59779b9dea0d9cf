"""The public market data beyond klines, against recorded payload shapes and the
simulator's own matching; unknown paths answer 404; /sapi, /fapi, /dapi as a spot-only
exchange answers them.

Each new endpoint's answer has exactly the field names and JSON types of the payload
Binance documents (``tests/fixtures/binance``, see SOURCES.md).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.support.sim import SimClient

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _shape(value: Any) -> Any:
    """Field names and JSON types, recursively (lists: the shape of their first item)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _get(sim: SimClient, path: str, **params: Any) -> httpx.Response:
    return httpx.get(sim.rest_url + path, params=params, timeout=10.0)


def test_new_endpoints_have_the_recorded_shapes_and_weights(sim: SimClient) -> None:
    cases = [
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5}, "rest_depth_docs.json", 5),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000}, "rest_depth_docs.json", 50),
        ("/api/v3/trades", {"symbol": "BTCUSDT", "limit": 3}, "rest_trades_docs.json", 25),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 3}, "rest_aggtrades_docs.json", 4),
        ("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}, "rest_ticker24hr_bnbbtc.json", 2),
        (
            "/api/v3/ticker/24hr",
            {"symbol": "BTCUSDT", "type": "MINI"},
            "rest_ticker24hr_mini_bnbbtc.json",
            2,
        ),
        ("/api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"}, "rest_bookticker_ltcbtc.json", 2),
        ("/api/v3/avgPrice", {"symbol": "BTCUSDT"}, "rest_avgprice_docs.json", 2),
    ]
    for path, params, fixture, weight in cases:
        before = _get(sim, "/api/v3/ping")
        used_before = int(before.headers["X-MBX-USED-WEIGHT-1M"])
        resp = _get(sim, path, **params)
        assert resp.status_code == 200, (path, resp.text)
        assert _shape(resp.json()) == _shape(_fixture(fixture)), path
        used = int(resp.headers["X-MBX-USED-WEIGHT-1M"])
        # at speed 60 an exchange minute is a wall second: the window may have reset
        assert used - used_before == weight or used == weight, (path, params, used)
    every = _get(sim, "/api/v3/ticker/24hr")
    assert every.status_code == 200 and len(every.json()) == 3
    assert _shape(every.json()[0]) == _shape(_fixture("rest_ticker24hr_bnbbtc.json"))
    books = _get(sim, "/api/v3/ticker/bookTicker").json()
    assert {b["symbol"] for b in books} == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}


def test_the_book_is_where_a_market_order_fills(sim: SimClient) -> None:
    """Best bid and best ask are the price a MARKET order of that size fills at."""
    import ccxt  # the order itself goes through a published client

    exchange = _ccxt(sim)
    for side in ("buy", "sell"):
        for _ in range(5):  # the price may move between the two requests: retry
            book = _get(sim, "/api/v3/depth", symbol="ETHUSDT", limit=5).json()
            level = book["asks"][0] if side == "buy" else book["bids"][0]
            order = exchange.create_order("ETH/USDT", "market", side, 0.5)
            fill = Decimal(str(order["info"]["fills"][0]["price"]))
            if fill == Decimal(level[0]):
                break
        else:
            raise AssertionError(f"no MARKET {side} filled at the book's best level")
        assert Decimal(level[1]) >= Decimal("0.5")
    assert isinstance(ccxt.__version__, str)


def test_trades_add_up_to_the_candles(sim: SimClient) -> None:
    """The trades of a closed minute are that minute's candle: ids, count, volume."""
    kline = _get(sim, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=2).json()[0]
    start, end = kline[0], kline[6]
    aggs = _get(sim, "/api/v3/aggTrades", symbol="BTCUSDT", startTime=start, endTime=end).json()
    assert aggs and aggs[0]["T"] >= start and aggs[-1]["T"] <= end
    trade_count = sum(a["l"] - a["f"] + 1 for a in aggs)
    if len(aggs) < 500:  # all of the minute fitted in one page
        assert trade_count == kline[8]
        volume = sum(Decimal(a["q"]) for a in aggs)
        assert volume == Decimal(kline[5])
        prices = [Decimal(a["p"]) for a in aggs]
        assert max(prices) == Decimal(kline[2]) and min(prices) == Decimal(kline[3])
    old = _get(sim, "/api/v3/historicalTrades", symbol="BTCUSDT", fromId=aggs[0]["f"], limit=5)
    assert old.json()[0]["id"] == aggs[0]["f"]


def test_unknown_paths_answer_404_never_500(sim: SimClient) -> None:
    for path in ("/api/v3/nope", "/api/v3/order/oco/nope", "/sapi/v1/nope", "/fapi/v1/ping"):
        assert _get(sim, path).status_code == 404, path
    assert httpx.put(sim.rest_url + "/api/v3/ping", timeout=10.0).status_code == 405


def test_sapi_and_futures_answer_as_a_spot_only_exchange(sim: SimClient) -> None:
    assert _get(sim, "/sapi/v1/system/status").json() == _fixture("sapi_system_status.json")
    fees = _ccxt(sim).sapiGetAssetTradeFee()  # signed: through a published client
    assert _shape(fees) == _shape(_fixture("sapi_tradefee.json"))
    assert _get(sim, "/sapi/v1/margin/allPairs").json() == []
    for path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
        info = _get(sim, path).json()
        assert info["symbols"] == [] and info["timezone"] == "UTC"


# --- ccxt with default options ------------------------------------------------------------------


def _ccxt(sim: SimClient) -> Any:
    """ccxt's binance with DEFAULT options; only its URLs point at the simulator."""
    import re

    import ccxt

    exchange = ccxt.binance({"apiKey": sim.api_key, "secret": sim.api_secret})
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
    return exchange


def test_ccxt_with_default_options_trades_against_the_simulator(sim: SimClient) -> None:
    exchange = _ccxt(sim)
    markets = exchange.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "BNB/USDT"} <= set(markets)
    assert exchange.fetch_status()["status"] == "ok"
    assert len(exchange.fetch_trading_fees()) == 3
    ticker = exchange.fetch_ticker("BTC/USDT")
    assert ticker["last"] > 0 and ticker["bid"] == ticker["ask"]
    assert set(exchange.fetch_tickers()) >= {"BTC/USDT", "ETH/USDT"}
    assert len(exchange.fetch_bids_asks()) == 3
    book = exchange.fetch_order_book("BTC/USDT")
    assert book["bids"] and book["asks"]
    candles = exchange.fetch_ohlcv("BTC/USDT", "1m", limit=100)
    assert len(candles) == 100
    trades = exchange.fetch_trades("BTC/USDT", limit=50)
    assert len(trades) == 50
    assert exchange.fetch_balance()["free"]["USDT"] > 0

    bought = exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    assert bought["status"] == "closed" and bought["filled"] == 0.01
    low = round(ticker["last"] * 0.5, 2)
    limit = exchange.create_order("BTC/USDT", "limit", "buy", 0.001, low)
    assert exchange.fetch_order(limit["id"], "BTC/USDT")["status"] == "open"
    assert limit["id"] in [o["id"] for o in exchange.fetch_open_orders("BTC/USDT")]
    assert exchange.cancel_order(limit["id"], "BTC/USDT")["status"] == "canceled"
    mine = exchange.fetch_my_trades("BTC/USDT")
    assert bought["id"] in {t["order"] for t in mine}
    records = {str(o["orderId"]): o for o in sim.orders()}
    assert records[bought["id"]]["status"] == "FILLED"
    assert records[limit["id"]]["status"] == "CANCELED"
