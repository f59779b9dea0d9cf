"""A published Binance client (python-binance) cannot tell the simulator from Binance.

The simulator runs as a real process; python-binance signs and sends exactly as it
does against api.binance.com (its ``API_URL`` points at the simulator).
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.sim import SimClient, SimFactory


def _client(sim: SimClient, secret: str | None = None, **kwargs: object) -> Client:
    client = Client(sim.api_key, secret or sim.api_secret, ping=False, **kwargs)
    client.API_URL = sim.rest_url + "/api"
    return client


def test_exchange_info_lists_symbols_with_real_filters(sim: SimClient) -> None:
    info = _client(sim).get_exchange_info()
    assert {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    btc = _client(sim).get_symbol_info("BTCUSDT")
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL", "MAX_NUM_ORDERS"} <= set(
        filters
    )
    assert any(r["rateLimitType"] == "REQUEST_WEIGHT" for r in info["rateLimits"])


def test_klines_and_historical_backfill(sim: SimClient) -> None:
    client = _client(sim)
    rows = client.get_klines(symbol="BTCUSDT", interval="1h", limit=1000)
    assert len(rows) == 1000
    opens = [r[0] for r in rows]
    assert opens == sorted(opens) and all(b - a == 3_600_000 for a, b in pairwise(opens))
    history = client.get_historical_klines("ETHUSDT", "1d", "1500 days ago UTC")
    assert len(history) >= 1000  # --history-days 1000 of candles exist before the start


def test_signed_market_and_limit_orders_query_cancel_account_and_trades(sim: SimClient) -> None:
    client = _client(sim)
    before = {b["asset"]: Decimal(b["free"]) for b in client.get_account()["balances"]}
    market = client.order_market_buy(symbol="BTCUSDT", quantity="0.01000", newClientOrderId="pb-m1")
    assert market["status"] == "FILLED"
    assert market["clientOrderId"] == "pb-m1"
    (fill,) = market["fills"]
    assert Decimal(fill["qty"]) == Decimal("0.01")
    price = Decimal(client.get_symbol_ticker(symbol="BTCUSDT")["price"])
    low = (price * Decimal("0.5")).quantize(Decimal("0.01"))
    limit = client.order_limit_buy(symbol="BTCUSDT", quantity="0.01000", price=str(low))
    assert limit["status"] == "NEW" and limit["fills"] == []
    queried = client.get_order(symbol="BTCUSDT", orderId=limit["orderId"])
    assert queried["status"] == "NEW" and queried["isWorking"] is True
    assert [o["orderId"] for o in client.get_open_orders(symbol="BTCUSDT")] == [limit["orderId"]]
    canceled = client.cancel_order(symbol="BTCUSDT", orderId=limit["orderId"])
    assert canceled["status"] == "CANCELED"
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="pb-m1")["status"] == "FILLED"
    after = {b["asset"]: Decimal(b["free"]) for b in client.get_account()["balances"]}
    assert after["BTC"] == before["BTC"] + Decimal("0.01") - Decimal(fill["commission"])
    spent = Decimal(market["cummulativeQuoteQty"])
    assert after["USDT"] == before["USDT"] - spent
    trades = client.get_my_trades(symbol="BTCUSDT")
    assert trades[-1]["orderId"] == market["orderId"]
    assert trades[-1]["commissionAsset"] == "BTC"
    every = client.get_all_orders(symbol="BTCUSDT")
    assert [o["orderId"] for o in every][-2:] == [market["orderId"], limit["orderId"]]
    records = sim.orders_with_client_id("pb-m1")
    assert len(records) == 1 and records[0]["status"] == "FILLED"


def test_wrong_secret_is_1022(sim: SimClient) -> None:
    with pytest.raises(BinanceAPIException) as err:
        _client(sim, secret="not-the-secret").get_account()
    assert err.value.code == -1022


def test_stale_timestamp_is_1021(sim: SimClient) -> None:
    client = _client(sim)
    client.timestamp_offset = -10 * 60 * 1000  # 10 minutes behind on both clocks
    with pytest.raises(BinanceAPIException) as err:
        client.get_account()
    assert err.value.code == -1021


def test_lot_size_violation_is_1013(sim: SimClient) -> None:
    with pytest.raises(BinanceAPIException) as err:
        _client(sim).order_market_buy(symbol="BTCUSDT", quantity="0.000001")
    assert (err.value.code, err.value.message) == (-1013, "Filter failure: LOT_SIZE")


def test_unknown_symbol_and_unknown_order(sim: SimClient) -> None:
    client = _client(sim)
    with pytest.raises(BinanceAPIException) as err:
        client.get_klines(symbol="NOPEUSDT", interval="1m")
    assert err.value.code == -1121
    with pytest.raises(BinanceAPIException) as err:
        client.get_order(symbol="BTCUSDT", orderId=987654321)
    assert err.value.code == -2013


def test_ed25519_key_registered_on_the_command_line_signs_orders(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    private = Ed25519PrivateKey.generate()
    pem_private = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_path = tmp_path / "ed25519.pub.pem"
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    sim = sim_factory(
        speed=1.0,
        symbols=["BTCUSDT"],
        extra_args=["--ed25519-public-key", str(public_path), "--ed25519-api-key", "edkey"],
    )
    client = Client("edkey", private_key=pem_private.decode(), ping=False)
    client.API_URL = sim.rest_url + "/api"
    order = client.order_market_buy(symbol="BTCUSDT", quantity="0.00100")
    assert order["status"] == "FILLED"
    assert client.get_account()["canTrade"] is True
    wrong = Client(
        "edkey",
        private_key=Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode(),
        ping=False,
    )
    wrong.API_URL = client.API_URL
    with pytest.raises(BinanceAPIException) as err:
        wrong.get_account()
    assert err.value.code == -1022
