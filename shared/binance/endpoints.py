"""Every REST endpoint botfleet uses, declared once, and the venue's base URLs.

Owns: path, HTTP method, request weight and security type of each endpoint
(reference §3, weights §7), shared by the REST clients (which reserve weight before
sending, DESIGN "Ownership and failure") and the simulator (which routes on them and
reports the weight it charged). Also the URL table of each ``BINANCE_ENV`` (§1).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

from msgspec import Struct


class Security(enum.StrEnum):
    """Security type (§3 "General"); every type but NONE is SIGNED."""

    NONE = "NONE"
    TRADE = "TRADE"
    USER_DATA = "USER_DATA"


class Endpoint(Struct, frozen=True, kw_only=True):
    """One REST endpoint.

    ``weight`` is what the request costs (the most common case; see :func:`weight_of`
    for parameter-dependent weights). ``success_weight`` is what a *successful*
    request costs when that differs: order placement and cancel weigh 0 on success
    since 2026-04-02 (CHANGELOG 2026-03-27).
    """

    name: str
    method: str
    path: str
    weight: int
    security: Security = Security.NONE
    success_weight: int | None = None

    @property
    def signed(self) -> bool:
        return self.security is not Security.NONE


PING = Endpoint(name="ping", method="GET", path="/api/v3/ping", weight=1)  # §3.1
TIME = Endpoint(name="time", method="GET", path="/api/v3/time", weight=1)  # §3.2
EXCHANGE_INFO = Endpoint(name="exchangeInfo", method="GET", path="/api/v3/exchangeInfo", weight=20)
KLINES = Endpoint(name="klines", method="GET", path="/api/v3/klines", weight=2)  # §3.4
TICKER_PRICE = Endpoint(name="tickerPrice", method="GET", path="/api/v3/ticker/price", weight=2)
NEW_ORDER = Endpoint(
    name="newOrder",
    method="POST",
    path="/api/v3/order",
    weight=1,
    security=Security.TRADE,
    success_weight=0,
)  # §3.6
TEST_ORDER = Endpoint(
    name="testOrder", method="POST", path="/api/v3/order/test", weight=1, security=Security.TRADE
)  # §3.7
QUERY_ORDER = Endpoint(
    name="queryOrder", method="GET", path="/api/v3/order", weight=4, security=Security.USER_DATA
)  # §3.8
CANCEL_ORDER = Endpoint(
    name="cancelOrder",
    method="DELETE",
    path="/api/v3/order",
    weight=1,
    security=Security.TRADE,
    success_weight=0,
)  # §3.9
OPEN_ORDERS = Endpoint(
    name="openOrders",
    method="GET",
    path="/api/v3/openOrders",
    weight=6,
    security=Security.USER_DATA,
)  # §3.10
CANCEL_OPEN_ORDERS = Endpoint(
    name="cancelOpenOrders",
    method="DELETE",
    path="/api/v3/openOrders",
    weight=1,
    security=Security.TRADE,
    success_weight=0,
)  # §3.10
ACCOUNT = Endpoint(
    name="account", method="GET", path="/api/v3/account", weight=20, security=Security.USER_DATA
)  # §3.11
MY_TRADES = Endpoint(
    name="myTrades", method="GET", path="/api/v3/myTrades", weight=20, security=Security.USER_DATA
)  # §3.12

ENDPOINTS: tuple[Endpoint, ...] = (
    PING,
    TIME,
    EXCHANGE_INFO,
    KLINES,
    TICKER_PRICE,
    NEW_ORDER,
    TEST_ORDER,
    QUERY_ORDER,
    CANCEL_ORDER,
    OPEN_ORDERS,
    CANCEL_OPEN_ORDERS,
    ACCOUNT,
    MY_TRADES,
)
_BY_ROUTE: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in ENDPOINTS}


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The endpoint a request targets (the simulator's router), or None."""
    return _BY_ROUTE.get((method.upper(), path))


def weight_of(endpoint: Endpoint, params: Mapping[str, object] | None = None) -> int:
    """Request weight of a call with these params (§7), before knowing its outcome."""
    params = params or {}
    if endpoint is TICKER_PRICE:
        return 2 if "symbol" in params else 4
    if endpoint is OPEN_ORDERS:
        return 6 if "symbol" in params else 80
    if endpoint is MY_TRADES:
        return 5 if "orderId" in params else 20
    if endpoint is TEST_ORDER:
        flag = str(params.get("computeCommissionRates", "")).lower()
        return 20 if flag == "true" else 1
    return endpoint.weight


def charged_weight(
    endpoint: Endpoint, params: Mapping[str, object] | None = None, *, success: bool
) -> int:
    """Weight the venue charges once the outcome is known (0 for a successful order/cancel)."""
    if success and endpoint.success_weight is not None:
        return endpoint.success_weight
    return weight_of(endpoint, params)


# --- base URLs (§1) ----------------------------------------------------------------------------


class BinanceUrls(NamedTuple):
    """Base URLs of one environment: REST, public market-data REST, market streams, WS API."""

    rest: str
    rest_market_data: str
    ws_streams: str
    ws_api: str


# The simulator's default address (``botfleet exchange-sim`` listens there unless told
# otherwise); override with BOTFLEET_BINANCE_REST_URL / _WS_URL.
SIM_DEFAULT_PORT = 9100
SIM_DEFAULT_HOST = f"127.0.0.1:{SIM_DEFAULT_PORT}"

URLS: dict[str, BinanceUrls] = {
    "production": BinanceUrls(
        rest="https://api.binance.com",
        rest_market_data="https://data-api.binance.vision",
        ws_streams="wss://stream.binance.com:9443",
        ws_api="wss://ws-api.binance.com:443/ws-api/v3",
    ),
    "testnet": BinanceUrls(
        rest="https://testnet.binance.vision",
        rest_market_data="https://testnet.binance.vision",
        ws_streams="wss://stream.testnet.binance.vision",
        ws_api="wss://ws-api.testnet.binance.vision/ws-api/v3",
    ),
    "sim": BinanceUrls(
        rest=f"http://{SIM_DEFAULT_HOST}",
        rest_market_data=f"http://{SIM_DEFAULT_HOST}",
        ws_streams=f"ws://{SIM_DEFAULT_HOST}",
        ws_api=f"ws://{SIM_DEFAULT_HOST}/ws-api/v3",
    ),
}


def urls_for(env: str) -> BinanceUrls:
    """URLs of ``sim`` / ``testnet`` / ``production``; a clear ``ValueError`` otherwise."""
    try:
        return URLS[env]
    except KeyError:
        raise ValueError(
            f"unknown BINANCE_ENV {env!r}; expected one of {', '.join(URLS)}"
        ) from None
