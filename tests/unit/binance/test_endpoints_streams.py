"""Endpoints are declared once with their weights; stream names and URLs round-trip."""

from __future__ import annotations

import json

import msgspec
import pytest

from shared.binance.endpoints import (
    ACCOUNT,
    CANCEL_ORDER,
    ENDPOINTS,
    EXCHANGE_INFO,
    KLINES,
    MY_TRADES,
    NEW_ORDER,
    OPEN_ORDERS,
    PING,
    TEST_ORDER,
    TICKER_PRICE,
    charged_weight,
    endpoint_for,
    urls_for,
    weight_of,
)
from shared.binance.streams import (
    combined_stream_url,
    decode_request,
    kline_stream,
    mini_ticker_stream,
    parse_stream_name,
    raw_stream_url,
    subscribe_request,
    unsubscribe_request,
)


def test_every_endpoint_is_routable_by_method_and_path() -> None:
    assert len({(e.method, e.path) for e in ENDPOINTS}) == len(ENDPOINTS)
    for endpoint in ENDPOINTS:
        assert endpoint_for(endpoint.method.lower(), endpoint.path) is endpoint
    assert endpoint_for("GET", "/api/v3/nope") is None


def test_weights_and_security_follow_reference_section_7() -> None:
    assert (PING.weight, EXCHANGE_INFO.weight, KLINES.weight, ACCOUNT.weight) == (1, 20, 2, 20)
    assert not KLINES.signed and NEW_ORDER.signed and ACCOUNT.signed
    assert weight_of(TICKER_PRICE, {"symbol": "BTCUSDT"}) == 2
    assert weight_of(TICKER_PRICE, {}) == 4
    assert weight_of(OPEN_ORDERS, {"symbol": "BTCUSDT"}) == 6
    assert weight_of(OPEN_ORDERS) == 80
    assert weight_of(MY_TRADES, {"symbol": "X", "orderId": 1}) == 5
    assert weight_of(TEST_ORDER, {"computeCommissionRates": "true"}) == 20
    # successful orders and cancels weigh 0 since 2026-04-02; failures pay the weight
    assert charged_weight(NEW_ORDER, success=True) == 0
    assert charged_weight(NEW_ORDER, success=False) == 1
    assert charged_weight(CANCEL_ORDER, success=True) == 0
    assert charged_weight(KLINES, success=True) == 2


def test_urls_per_environment() -> None:
    assert urls_for("production").rest == "https://api.binance.com"
    assert urls_for("testnet").ws_streams == "wss://stream.testnet.binance.vision"
    assert urls_for("sim").rest.startswith("http://127.0.0.1")
    with pytest.raises(ValueError, match="'mainnet'"):
        urls_for("mainnet")


def test_stream_names_round_trip() -> None:
    assert kline_stream("BTCUSDT", "1m") == "btcusdt@kline_1m"
    parsed = parse_stream_name(kline_stream("BTCUSDT", "1M"))
    assert parsed is not None
    assert (parsed.kind, parsed.symbol, parsed.interval) == ("kline", "BTCUSDT", "1M")
    mini = parse_stream_name(mini_ticker_stream("ETHBTC"))
    assert mini is not None and (mini.kind, mini.symbol) == ("miniTicker", "ETHBTC")
    assert parse_stream_name("btcusdt@kline_2m") is None
    assert parse_stream_name("btcusdt@depth") is None
    with pytest.raises(ValueError):
        kline_stream("BTCUSDT", "7m")


def test_stream_urls() -> None:
    base = "wss://stream.binance.com:9443/"
    assert (
        raw_stream_url(base, "btcusdt@kline_1m")
        == "wss://stream.binance.com:9443/ws/btcusdt@kline_1m"
    )
    assert (
        combined_stream_url(base, ["a@kline_1m", "b@kline_1m"])
        == "wss://stream.binance.com:9443/stream?streams=a@kline_1m/b@kline_1m"
    )
    with pytest.raises(ValueError):
        combined_stream_url(base, ["x"] * 1025)


def test_control_requests_match_the_documented_shape() -> None:
    assert json.loads(subscribe_request(["btcusdt@aggTrade", "btcusdt@depth"], 1)) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@aggTrade", "btcusdt@depth"],
        "id": 1,
    }
    request = decode_request(unsubscribe_request(["btcusdt@depth"], 312))
    assert (request.method, request.params, request.id) == ("UNSUBSCRIBE", ["btcusdt@depth"], 312)
    listing = decode_request('{"method":"LIST_SUBSCRIPTIONS","id":3}')
    assert (listing.method, listing.params, listing.id) == ("LIST_SUBSCRIPTIONS", msgspec.UNSET, 3)
