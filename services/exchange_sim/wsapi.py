"""WebSocket API market-data and trading methods (reference §3.14, §6, §7).

Owns the table of WS-API methods answered by the REST endpoints' own code (one rule,
two transports): ``exchangeInfo``, ``depth``, ``trades.recent``,
``trades.historical``, ``trades.aggregate``, ``klines``, ``uiKlines``, ``avgPrice``,
``ticker.24hr``, ``ticker.price``, ``ticker.book``, and, signed, ``order.place``,
``order.test``, ``order.status``, ``order.cancel``, ``openOrders.status``,
``openOrders.cancelAll``, ``allOrders``, ``myTrades``, ``account.status``.

A call costs the REST endpoint's weight, from the same per-IP minute budget as REST
(Binance shares it); the reply is ``{"id","status":200,"result":...,"rateLimits":[...]}``
with the weight used (and, for an order, the ORDERS counts), unless the connection or
the request says ``returnRateLimits=false``. Errors are ``{"id","status","error":
{"code","msg"}}``; a 429/418 adds ``"data":{"serverTime","retryAfter"}`` (epoch ms, as
the WS API reports it instead of ``Retry-After``). Signed calls carry ``apiKey``,
``timestamp`` and ``signature`` (WS-API signing: params sorted, not percent-encoded),
or none of them on a session after ``session.logon``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from aiohttp import web

from services.exchange_sim.apierror import ApiError
from services.exchange_sim.limits import RateLimited
from services.exchange_sim.requests import ApiKey, Request

_json = msgspec.json.Encoder(decimal_format="string")


@dataclass(frozen=True)
class Method:
    http_method: str
    path: str  # the REST endpoint whose code and weight it shares
    handler: str  # name of the server's REST handler
    signed: bool = False


METHODS: dict[str, Method] = {
    "exchangeInfo": Method("GET", "/api/v3/exchangeInfo", "exchange_info"),
    "depth": Method("GET", "/api/v3/depth", "depth"),
    "trades.recent": Method("GET", "/api/v3/trades", "trades"),
    "trades.historical": Method("GET", "/api/v3/historicalTrades", "historical_trades"),
    "trades.aggregate": Method("GET", "/api/v3/aggTrades", "agg_trades"),
    "klines": Method("GET", "/api/v3/klines", "klines"),
    "uiKlines": Method("GET", "/api/v3/uiKlines", "klines"),
    "avgPrice": Method("GET", "/api/v3/avgPrice", "avg_price"),
    "ticker.24hr": Method("GET", "/api/v3/ticker/24hr", "ticker_24hr"),
    "ticker.price": Method("GET", "/api/v3/ticker/price", "ticker_price"),
    "ticker.book": Method("GET", "/api/v3/ticker/bookTicker", "book_ticker"),
    "order.place": Method("POST", "/api/v3/order", "new_order", signed=True),
    "order.test": Method("POST", "/api/v3/order/test", "test_order", signed=True),
    "order.status": Method("GET", "/api/v3/order", "query_order", signed=True),
    "order.cancel": Method("DELETE", "/api/v3/order", "cancel_order", signed=True),
    "openOrders.status": Method("GET", "/api/v3/openOrders", "open_orders", signed=True),
    "openOrders.cancelAll": Method(
        "DELETE", "/api/v3/openOrders", "cancel_open_orders", signed=True
    ),
    "allOrders": Method("GET", "/api/v3/allOrders", "all_orders", signed=True),
    "myTrades": Method("GET", "/api/v3/myTrades", "my_trades", signed=True),
    "account.status": Method("GET", "/api/v3/account", "account", signed=True),
}
_AUTH_PARAMS = ("apiKey", "signature")


class WsCall:
    """What a REST handler reads of its request (``["sim_req"]``, ``headers``,
    ``path``), for a WS-API call whose key was already verified (``key``)."""

    def __init__(self, req: Request, key: ApiKey | None, path: str) -> None:
        self._items: dict[str, Any] = {"sim_req": req}
        self.key = key
        self.path = path
        self.headers: dict[str, str] = {}

    def __getitem__(self, name: str) -> Any:
        return self._items[name]


def as_request(params: Mapping[str, Any]) -> Request:
    """WS-API params (JSON values) as REST parameters (strings), auth params dropped."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if name in _AUTH_PARAMS or value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, (int, float)):
            out[name] = str(value)
        else:
            out[name] = _json.encode(value).decode()
    return Request(out)


def error_reply(
    req_id: Any, exc: ApiError, server_time: int, rate_limits: list[dict[str, Any]] | None
) -> bytes:
    error: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
    if isinstance(exc, RateLimited):
        error["data"] = {
            "serverTime": server_time,
            "retryAfter": server_time + exc.retry_after_s * 1000,
        }
    reply: dict[str, Any] = {"id": req_id, "status": exc.status, "error": error}
    if rate_limits is not None:
        reply["rateLimits"] = rate_limits
    return _json.encode(reply)


def ok_reply(req_id: Any, body: bytes, rate_limits: list[dict[str, Any]] | None) -> bytes:
    """The reply around a REST handler's JSON body (spliced, not re-encoded)."""
    head = b'{"id":' + _json.encode(req_id) + b',"status":200,"result":' + body
    if rate_limits is None:
        return head + b"}"
    return head + b',"rateLimits":' + _json.encode(rate_limits) + b"}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def run_handler(handler: Handler, call: WsCall) -> web.Response:
    resp = await handler(cast(web.Request, call))
    assert isinstance(resp, web.Response)
    return resp
