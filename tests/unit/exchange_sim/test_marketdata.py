"""Market data beyond klines: weights, the book at the matching price, trades that add
up to the path's seconds, and the timestamp rule's clock."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.exchange_sim import marketdata
from services.exchange_sim.app import SimOptions, build_exchange
from services.exchange_sim.exchange import Exchange
from services.exchange_sim.market import TRADE_ID_STRIDE
from services.exchange_sim.requests import Request


@pytest.fixture
def ex() -> Exchange:
    return build_exchange(
        SimOptions(symbols=["BTCUSDT", "ETHUSDT"], api_key="k", api_secret="s", history_days=2)
    )


@pytest.mark.parametrize(
    ("path", "params", "weight"),
    [
        ("/api/v3/depth", {}, 5),
        ("/api/v3/depth", {"limit": "100"}, 5),
        ("/api/v3/depth", {"limit": "500"}, 25),
        ("/api/v3/depth", {"limit": "1000"}, 50),
        ("/api/v3/depth", {"limit": "5000"}, 250),
        ("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}, 2),
        ("/api/v3/ticker/24hr", {"symbols": '["A","B"]'}, 2),
        ("/api/v3/ticker/24hr", {"symbols": "[" + ",".join(['"A"'] * 21) + "]"}, 40),
        ("/api/v3/ticker/24hr", {"symbols": "[" + ",".join(['"A"'] * 101) + "]"}, 80),
        ("/api/v3/ticker/24hr", {}, 80),
        ("/api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"}, 2),
        ("/api/v3/ticker/bookTicker", {}, 4),
        ("/api/v3/trades", {}, 25),
        ("/api/v3/aggTrades", {}, 4),
    ],
)
def test_weights(path: str, params: dict[str, str], weight: int) -> None:
    assert marketdata.weight_for("GET", path, params) == weight


def test_the_book_is_locked_at_the_price_a_market_order_fills_at(ex: Exchange) -> None:
    book = marketdata.depth(ex, Request({"symbol": "BTCUSDT", "limit": "5"}))
    price = ex.price("BTCUSDT")
    assert Decimal(book["bids"][0][0]) == Decimal(book["asks"][0][0]) == price
    assert Decimal(book["bids"][0][1]) == ex.rules["BTCUSDT"].market_max_qty


def test_trades_of_a_second_add_up_to_its_volume(ex: Exchange) -> None:
    rows = marketdata.trades(ex, Request({"symbol": "ETHUSDT", "limit": "1000"}))
    assert len(rows) == 1000
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    market = ex.markets["ETHUSDT"]
    second = ids[-1] // TRADE_ID_STRIDE
    of_second = [r for r in rows if r["id"] // TRADE_ID_STRIDE == second]
    summary = market.second_summary(second)
    assert len(of_second) == summary.n
    volume = sum(Decimal(r["qty"]) for r in of_second)
    assert volume == summary.v * market.spec.base_unit
    aggs = marketdata.agg_trades(ex, Request({"symbol": "ETHUSDT", "limit": "5"}))
    assert aggs[-1]["l"] == ids[-1]


def test_a_clock_offset_removes_the_wall_clock_fallback(ex: Exchange) -> None:
    assert ex.wall_fallback_ms() is None  # speed 1 from now: the exchange clock is wall time
    ex.clock.speed = 60
    assert ex.wall_fallback_ms() is not None  # sped up: clients' own clocks still pass
    ex.clock.offset_ms = 1
    assert ex.wall_fallback_ms() is None  # an offset must show
