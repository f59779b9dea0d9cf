"""The HTTP/WebSocket shell of the simulator (aiohttp, one port).

Routes: REST under ``/api/v3/...``; market streams at ``/ws``, ``/ws/<stream>`` and
``/stream?streams=a/b``; the WebSocket API at ``/ws-api/v3``; the admin endpoints
``/sim/faults`` (GET/POST/DELETE), ``/sim/orders`` and ``/sim/info``. Every request is
parsed here and answered from :class:`~.exchange.Exchange`; nothing in this module
decides a Binance rule except how bytes reach the wire.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import WSMessage, WSMsgType, web

from services.exchange_sim import marketdata, responses, wsapi
from services.exchange_sim.apierror import (
    BAD_API_KEY_FMT,
    INVALID_SYMBOL,
    REJECTED_KEY,
    ApiError,
    mandatory,
)
from services.exchange_sim.book import COMMISSION, UserEvent, new_client_id
from services.exchange_sim.candles import DEFAULT_KLINES, MAX_KLINES
from services.exchange_sim.exchange import Exchange
from services.exchange_sim.faults import FaultUpdate
from services.exchange_sim.limits import RateLimited
from services.exchange_sim.market import QUOTE_UNIT
from services.exchange_sim.requests import (
    ApiKey,
    Request,
    authenticate,
    interval_of,
    parse_new_order,
    symbol_of,
)
from services.exchange_sim.wsconn import (
    OUTBOX_BACKLOG,
    Conn,
    RawTransport,
    WsProtocol,
    text_frame,
)
from shared.binance.endpoints import charged_weight, endpoint_for, weight_of
from shared.binance.rules import exchange_info_symbol
from shared.binance.schemas import ServerShutdownEvent
from shared.binance.streams import MAX_CONTROL_MESSAGES_PER_SECOND, MAX_STREAMS_PER_CONNECTION
from shared.logging import get_logger
from shared.service import cancel_tasks

log = get_logger(__name__)
_json = msgspec.json.Encoder(decimal_format="string")
_EXTRA_WEIGHTS = {
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/sapi/v1/capital/config/getall"): 10,
    ("GET", "/sapi/v1/asset/tradeFee"): 1,
    ("GET", "/sapi/v1/margin/allPairs"): 1,
    ("GET", "/sapi/v1/margin/isolated/allPairs"): 10,
    ("POST", "/api/v3/userDataStream"): 2,
    ("PUT", "/api/v3/userDataStream"): 2,
    ("DELETE", "/api/v3/userDataStream"): 2,
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _resp(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=_json.encode(payload), status=status, content_type="application/json")


def _error(exc: ApiError) -> web.Response:
    resp = _resp({"code": exc.code, "msg": exc.msg}, exc.status)
    if isinstance(exc, RateLimited):
        resp.headers["Retry-After"] = str(exc.retry_after_s)
    return resp


# --- WebSocket connections -----------------------------------------------------------------


class SimServer:
    """The aiohttp application around one :class:`Exchange`."""

    def __init__(
        self,
        ex: Exchange,
        *,
        ws_ping_interval: float = 20.0,
        shutdown_grace_s: float = 3.0,
        legacy_listen_key: bool = False,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.ex = ex
        # Binance retired the listenKey endpoints on 2026-02-20 (reference §0.1): they
        # answer 410 Gone. --legacy-listen-key serves them for clients not yet moved.
        self.legacy_listen_key = legacy_listen_key
        self.ws_ping_interval = ws_ping_interval
        # serverShutdown: wall seconds between the notice and the close of the
        # connections notified (time for a client to open and subscribe a replacement)
        self.shutdown_grace_s = shutdown_grace_s
        self._tasks: set[asyncio.Task[None]] = set()  # pending shutdown closes
        self._wrap: dict[str, bytes] = {}  # combined-stream prefix per stream
        self.info = info or {}
        self.conns: set[Conn] = set()
        self.subscribers: dict[str, set[Conn]] = {}
        self.listen_keys: dict[str, str] = {}  # listenKey -> account
        self.proto = WsProtocol(ex, self._subscribe, self._unsubscribe)
        self._symbol_info = {s: exchange_info_symbol(r) for s, r in ex.rules.items()}
        self.app = web.Application(middlewares=[self._rest_middleware])
        r = self.app.router
        r.add_get("/api/v3/ping", self.ping)
        r.add_get("/api/v3/time", self.time)
        r.add_get("/api/v3/exchangeInfo", self.exchange_info)
        r.add_get("/api/v3/klines", self.klines)
        r.add_get("/api/v3/uiKlines", self.klines)
        r.add_get("/api/v3/ticker/price", self.ticker_price)
        r.add_get("/api/v3/ticker/24hr", self.ticker_24hr)
        r.add_get("/api/v3/ticker/bookTicker", self.book_ticker)
        r.add_get("/api/v3/depth", self.depth)
        r.add_get("/api/v3/trades", self.trades)
        r.add_get("/api/v3/historicalTrades", self.historical_trades)
        r.add_get("/api/v3/aggTrades", self.agg_trades)
        r.add_get("/api/v3/avgPrice", self.avg_price)
        r.add_post("/api/v3/order", self.new_order)
        r.add_post("/api/v3/order/test", self.test_order)
        r.add_get("/api/v3/order", self.query_order)
        r.add_delete("/api/v3/order", self.cancel_order)
        r.add_get("/api/v3/openOrders", self.open_orders)
        r.add_delete("/api/v3/openOrders", self.cancel_open_orders)
        r.add_get("/api/v3/account", self.account)
        r.add_get("/api/v3/allOrders", self.all_orders)
        r.add_get("/api/v3/myTrades", self.my_trades)
        r.add_post("/api/v3/userDataStream", self.listen_key_new)
        r.add_put("/api/v3/userDataStream", self.listen_key_keep)
        r.add_delete("/api/v3/userDataStream", self.listen_key_delete)
        # /sapi: the few wallet calls a spot client makes at start, answered truthfully
        # for a spot-only exchange; /fapi and /dapi: an exchange without futures.
        r.add_get("/sapi/v1/system/status", self.system_status)
        r.add_get("/sapi/v1/capital/config/getall", self.capital_config)
        r.add_get("/sapi/v1/margin/allPairs", self.margin_pairs)
        r.add_get("/sapi/v1/margin/isolated/allPairs", self.margin_pairs)
        r.add_get("/sapi/v1/asset/tradeFee", self.trade_fee)
        r.add_get("/fapi/v1/exchangeInfo", self.futures_exchange_info)
        r.add_get("/dapi/v1/exchangeInfo", self.futures_exchange_info)
        r.add_get("/ws", self.ws_streams)
        r.add_get("/ws/{streams:.*}", self.ws_streams)
        r.add_get("/stream", self.ws_streams)
        r.add_get("/ws-api/v3", self.ws_api)
        r.add_get("/sim/faults", self.faults_get)
        r.add_post("/sim/faults", self.faults_post)
        r.add_delete("/sim/faults", self.faults_delete)
        r.add_get("/sim/orders", self.sim_orders)
        r.add_get("/sim/info", self.sim_info)
        r.add_get("/sim/limits", self.sim_limits)

    # --- REST plumbing ---------------------------------------------------------------------

    @web.middleware
    async def _rest_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(("/api/", "/sapi/")):
            return await _not_found_as_binance(handler, request)
        faults = self.ex.faults.config
        if faults.latency_ms:
            log.info("fault.injected", kind="latency", ms=faults.latency_ms, path=request.path)
            await asyncio.sleep(faults.latency_ms / 1000)
        ip = request.remote or "?"
        now = self.ex.now_ms()
        body = (await request.text()) if request.can_read_body else ""
        req = Request.from_raw(request.query_string, body)
        request["sim_req"] = req
        endpoint = endpoint_for(request.method, request.path)
        weight = _weight(request.method, request.path, req.params)
        try:
            used = self.ex.limits.charge(ip, weight, now)
        except RateLimited as exc:
            log.warning(
                "ratelimit.refused", ip=ip, status=exc.status, retry_after_s=exc.retry_after_s
            )
            resp = _error(exc)
            resp.headers["X-MBX-USED-WEIGHT-1M"] = str(self.ex.limits.used(ip, now))
            return resp
        if self.ex.faults.fail_request():
            log.warning("fault.injected", kind="error_5xx", path=request.path)
            resp = _resp(
                {
                    "code": -1001,
                    "msg": "Internal error; unable to process your request. Please try again.",
                },
                500,
            )
        else:
            try:
                resp = await handler(request)  # type: ignore[assignment]
            except ApiError as exc:
                resp = _error(exc)
            except web.HTTPException as exc:  # no such path or method: Binance's 404 / 405
                resp = web.Response(status=exc.status, body=b"")
            except Exception:  # a simulator bug must still answer like Binance
                log.exception("request.failed", path=request.path)
                resp = _resp(
                    {
                        "code": -1000,
                        "msg": "An unknown error occurred while processing the request.",
                    },
                    500,
                )
            if endpoint is not None and resp.status == 200 and endpoint.success_weight is not None:
                used = self.ex.limits.refund(
                    ip, weight - charged_weight(endpoint, req.params, success=True)
                )
        resp.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        resp.headers["X-MBX-USED-WEIGHT"] = str(used)
        return resp

    def _req(self, request: web.Request) -> Request:
        req: Request = request["sim_req"]
        return req

    def _auth(self, request: web.Request) -> tuple[Request, ApiKey, int]:
        req = self._req(request)
        now = self.ex.now_ms()
        if isinstance(request, wsapi.WsCall):  # a WS-API call, verified by its own rule
            if request.key is None:
                raise REJECTED_KEY
            return req, request.key, now
        key = authenticate(
            req,
            request.headers.get("X-MBX-APIKEY"),
            self.ex.active_keys(),
            now,
            self.ex.wall_fallback_ms(),
        )
        return req, key, now

    # --- market data -------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return _resp({})

    async def time(self, request: web.Request) -> web.Response:
        return _resp({"serverTime": self.ex.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        req = self._req(request)
        names: list[str] = list(self.ex.rules)
        if req.get("symbol") is not None and req.get("symbols") is not None:
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if req.get("symbol") is not None:
            names = [symbol_of(req, self.ex.rules) or ""]
        elif (raw := req.get("symbols")) is not None:
            try:
                wanted = msgspec.json.decode(raw, type=list[str])
            except msgspec.DecodeError:
                raise ApiError(
                    -1100,
                    "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.",
                ) from None
            for s in wanted:
                if s.upper() not in self.ex.rules:
                    raise INVALID_SYMBOL
            names = [s.upper() for s in wanted]
        return _resp(
            {
                "timezone": "UTC",
                "serverTime": self.ex.now_ms(),
                "rateLimits": self.ex.limits.rate_limits(),
                "exchangeFilters": [],
                "symbols": [self._symbol_info[s] for s in names],
            }
        )

    async def klines(self, request: web.Request) -> web.Response:
        req = self._req(request)
        symbol = symbol_of(req, self.ex.rules)
        assert symbol is not None
        interval = interval_of(req)
        limit = req.integer("limit") or DEFAULT_KLINES
        if limit < 1:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        limit = min(
            limit, MAX_KLINES
        )  # §3.4: max 1000 (clamped; the venue's answer above is undocumented)
        start, end = req.integer("startTime"), req.integer("endTime")
        if start is not None and end is not None and start > end:
            raise ApiError(-1130, "Data sent for parameter 'startTime' is not valid.")
        rows = self.ex.markets[symbol].klines(
            interval, self.ex.now_ms(), start_ms=start, end_ms=end, limit=limit
        )
        return _resp(rows)

    async def ticker_price(self, request: web.Request) -> web.Response:
        req = self._req(request)
        symbol = symbol_of(req, self.ex.rules, required=False)
        if symbol is not None:
            return _resp({"symbol": symbol, "price": _d8(self.ex.price(symbol))})
        names = list(self.ex.rules)
        if (raw := req.get("symbols")) is not None:
            try:
                names = [s.upper() for s in msgspec.json.decode(raw, type=list[str])]
            except msgspec.DecodeError:
                raise mandatory("symbols") from None
            if any(s not in self.ex.rules for s in names):
                raise INVALID_SYMBOL
        return _resp([{"symbol": s, "price": _d8(self.ex.price(s))} for s in names])

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        return _resp(marketdata.tickers_24hr(self.ex, self._req(request)))

    async def book_ticker(self, request: web.Request) -> web.Response:
        return _resp(marketdata.book_tickers(self.ex, self._req(request)))

    async def depth(self, request: web.Request) -> web.Response:
        return _resp(marketdata.depth(self.ex, self._req(request)))

    async def trades(self, request: web.Request) -> web.Response:
        return _resp(marketdata.trades(self.ex, self._req(request)))

    async def historical_trades(self, request: web.Request) -> web.Response:
        return _resp(marketdata.trades(self.ex, self._req(request), historical=True))

    async def agg_trades(self, request: web.Request) -> web.Response:
        return _resp(marketdata.agg_trades(self.ex, self._req(request)))

    # --- /sapi, /fapi, /dapi: what a spot-only exchange answers --------------------------------

    async def system_status(self, request: web.Request) -> web.Response:
        return _resp({"status": 0, "msg": "normal"})

    async def capital_config(self, request: web.Request) -> web.Response:
        """Every asset of the account: trading only (no deposits, withdrawals or networks)."""
        _, key, _ = self._auth(request)
        account = self.ex.book.accounts[key.account]
        assets = {r.base_asset for r in self.ex.rules.values()}
        assets |= {r.quote_asset for r in self.ex.rules.values()} | set(account.balances)
        rows = []
        for asset in sorted(assets):
            free, locked = account.balances.get(asset, [Decimal(0), Decimal(0)])
            rows.append(
                {
                    "coin": asset,
                    "depositAllEnable": False,
                    "withdrawAllEnable": False,
                    "name": asset,
                    "free": _d8(free),
                    "locked": _d8(locked),
                    "freeze": "0",
                    "withdrawing": "0",
                    "ipoing": "0",
                    "ipoable": "0",
                    "storage": "0",
                    "isLegalMoney": False,
                    "trading": True,
                    "networkList": [],
                }
            )
        return _resp(rows)

    async def margin_pairs(self, request: web.Request) -> web.Response:
        return _resp([])  # no margin trading here

    async def trade_fee(self, request: web.Request) -> web.Response:
        req, _, _ = self._auth(request)
        symbol = symbol_of(req, self.ex.rules, required=False)
        fee = _d8(COMMISSION)
        return _resp(
            [
                {"symbol": s, "makerCommission": fee, "takerCommission": fee}
                for s in ([symbol] if symbol else list(self.ex.rules))
            ]
        )

    async def futures_exchange_info(self, request: web.Request) -> web.Response:
        """A futures venue that lists nothing: clients load zero futures markets."""
        return _resp(
            {
                "timezone": "UTC",
                "serverTime": self.ex.now_ms(),
                "futuresType": "U_MARGINED"
                if request.path.startswith("/fapi")
                else "COIN_MARGINED",
                "rateLimits": [],
                "exchangeFilters": [],
                "assets": [],
                "symbols": [],
            }
        )

    async def avg_price(self, request: web.Request) -> web.Response:
        req = self._req(request)
        symbol = symbol_of(req, self.ex.rules)
        assert symbol is not None
        market = self.ex.markets[symbol]
        now_s = market.visible_second(self.ex.now_ms() // 1000)
        agg = market.aggregate(now_s - 299, now_s + 1)
        assert agg is not None
        # volume-weighted over the last 5 minutes (§5 "reference price")
        price = (
            Decimal(agg.q) * QUOTE_UNIT / (Decimal(agg.v) * market.spec.base_unit)
            if agg.v
            else market.price(now_s)
        )
        return _resp({"mins": 5, "price": _d8(price), "closeTime": now_s * 1000})

    # --- orders ------------------------------------------------------------------------------

    async def new_order(self, request: web.Request) -> web.Response:
        req, key, now = self._auth(request)
        order_req, resp_type = parse_new_order(req, self.ex.rules)
        self.ex.book.check_new(key.account, order_req)
        c10, c1d = self.ex.limits.count_order(key.account, now)
        order = self.ex.place(key.account, order_req, now)
        self._deliver(self.ex.book.drain_events())
        if self.ex.faults.lose_order_answer():
            cfg = self.ex.faults.config
            log.warning(
                "fault.injected",
                kind="order_answer_lost",
                mode=cfg.unknown_mode,
                client_order_id=order.client_order_id,
                order_id=order.order_id,
            )
            if cfg.unknown_mode == "timeout":
                await asyncio.sleep(cfg.timeout_s)
            elif cfg.unknown_mode == "500":  # "internal error, retry" after executing it
                return _resp(
                    {
                        "code": -1001,
                        "msg": "Internal error; unable to process your request. Please try again.",
                    },
                    500,
                )
            return _resp(
                {
                    "code": -1007,
                    "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
                },
                503,
            )
        resp = _resp(responses.order_response(order, resp_type, now))
        resp.headers["X-MBX-ORDER-COUNT-10S"] = str(c10)
        resp.headers["X-MBX-ORDER-COUNT-1D"] = str(c1d)
        return resp

    async def test_order(self, request: web.Request) -> web.Response:
        req, key, now = self._auth(request)
        order_req, _ = parse_new_order(req, self.ex.rules)
        self.ex.test_order(key.account, order_req, now)
        return _resp({})

    def _order_ref(
        self, req: Request, id_name: str = "origClientOrderId"
    ) -> tuple[int | None, str | None]:
        order_id = req.integer("orderId")
        client_id = req.get(id_name)
        if order_id is None and client_id is None:
            raise ApiError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        return order_id, client_id

    async def query_order(self, request: web.Request) -> web.Response:
        req, key, _ = self._auth(request)
        symbol = symbol_of(req, self.ex.rules)
        assert symbol is not None
        order_id, client_id = self._order_ref(req)
        order = self.ex.book.find(key.account, symbol, order_id, client_id)
        return _resp(responses.query_order(order))

    async def cancel_order(self, request: web.Request) -> web.Response:
        req, key, now = self._auth(request)
        symbol = symbol_of(req, self.ex.rules)
        assert symbol is not None
        order_id, client_id = self._order_ref(req)
        cancel_id = req.get("newClientOrderId") or new_client_id()
        order = self.ex.book.cancel(key.account, symbol, order_id, client_id, now, cancel_id)
        self._deliver(self.ex.book.drain_events())
        return _resp(responses.cancel_order(order, cancel_id, now))

    async def open_orders(self, request: web.Request) -> web.Response:
        req, key, _ = self._auth(request)
        symbol = symbol_of(req, self.ex.rules, required=False)
        return _resp(
            [responses.query_order(o) for o in self.ex.book.open_orders(key.account, symbol)]
        )

    async def cancel_open_orders(self, request: web.Request) -> web.Response:
        req, key, now = self._auth(request)
        symbol = symbol_of(req, self.ex.rules)
        assert symbol is not None
        orders = self.ex.book.open_orders(key.account, symbol)
        if not orders:
            raise ApiError(-2011, "Unknown order sent.")
        out = []
        for order in orders:
            cancel_id = new_client_id()
            self.ex.book.cancel(key.account, symbol, order.order_id, None, now, cancel_id)
            out.append(responses.cancel_order(order, cancel_id, now))
        self._deliver(self.ex.book.drain_events())
        return _resp(out)

    async def all_orders(self, request: web.Request) -> web.Response:
        """``GET /api/v3/allOrders`` (§3.12): every order of a symbol, oldest first."""
        req, key, _ = self._auth(request)
        symbol = symbol_of(req, self.ex.rules)
        order_id = req.integer("orderId")
        start, end = req.integer("startTime"), req.integer("endTime")
        limit = req.integer("limit") or 500
        if limit < 1 or limit > 1000:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and end - start > 24 * 3600 * 1000:
            raise ApiError(-1127, "More than 24 hours between startTime and endTime.")
        orders = [
            o for o in self.ex.book.history if o.account == key.account and o.symbol == symbol
        ]
        if order_id is not None:
            orders = [o for o in orders if o.order_id >= order_id][:limit]
        else:
            if start is not None:
                orders = [o for o in orders if o.time >= start]
            if end is not None:
                orders = [o for o in orders if o.time <= end]
            orders = orders[:limit] if start is not None else orders[-limit:]
        return _resp([responses.query_order(o) for o in orders])

    async def account(self, request: web.Request) -> web.Response:
        req, key, _ = self._auth(request)
        omit = bool(req.boolean("omitZeroBalances"))
        return _resp(responses.account_payload(self.ex.book.accounts[key.account], omit))

    async def my_trades(self, request: web.Request) -> web.Response:
        req, key, _ = self._auth(request)
        symbol = symbol_of(req, self.ex.rules)
        order_id = req.integer("orderId")
        start, end = req.integer("startTime"), req.integer("endTime")
        from_id = req.integer("fromId")
        limit = req.integer("limit") or 500
        if limit < 1 or limit > 1000:
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and end - start > 24 * 3600 * 1000:
            raise ApiError(-1127, "More than 24 hours between startTime and endTime.")
        fills = [f for f in self.ex.book.trades[key.account] if f.symbol == symbol]
        if order_id is not None:
            fills = [f for f in fills if f.order_id == order_id]
        if from_id is not None:
            fills = [f for f in fills if f.trade_id >= from_id][:limit]
        else:
            if start is not None:
                fills = [f for f in fills if f.time >= start]
            if end is not None:
                fills = [f for f in fills if f.time <= end]
            fills = fills[:limit] if start is not None else fills[-limit:]
        return _resp([responses.my_trade(f) for f in fills])

    # --- legacy listenKey (python-binance and older clients) --------------------------------

    def _key_only(self, request: web.Request) -> ApiKey:
        api_key = request.headers.get("X-MBX-APIKEY")
        if not api_key:
            raise BAD_API_KEY_FMT
        key = self.ex.active_keys().get(api_key)
        if key is None:
            raise REJECTED_KEY
        return key

    async def listen_key_new(self, request: web.Request) -> web.Response:
        if not self.legacy_listen_key:
            return _gone()
        key = self._key_only(request)
        listen_key = secrets.token_urlsafe(48)[:64]
        self.listen_keys[listen_key] = key.account
        return _resp({"listenKey": listen_key})

    async def listen_key_keep(self, request: web.Request) -> web.Response:
        if not self.legacy_listen_key:
            return _gone()
        self._key_only(request)
        if self._req(request).require("listenKey") not in self.listen_keys:
            raise ApiError(-1125, "This listenKey does not exist.")
        return _resp({})

    async def listen_key_delete(self, request: web.Request) -> web.Response:
        if not self.legacy_listen_key:
            return _gone()
        self._key_only(request)
        self.listen_keys.pop(self._req(request).require("listenKey"), None)
        return _resp({})

    # --- admin -------------------------------------------------------------------------------

    async def faults_get(self, request: web.Request) -> web.Response:
        return _resp(self.ex.faults.as_dict())

    async def faults_post(self, request: web.Request) -> web.Response:
        try:
            update = msgspec.json.decode(await request.read(), type=FaultUpdate)
            config = self.ex.faults.update(update)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
            return _resp({"error": str(exc)}, 400)
        log.warning("fault.configured", **self.ex.faults.as_dict())
        if update.clock_offset_ms is not None:
            self.ex.clock.offset_ms = config.clock_offset_ms
            log.warning("fault.injected", kind="clock_offset", offset_ms=config.clock_offset_ms)
        self.ex.apply_freeze(self.ex.now_ms() // 1000)
        now = self.ex.now_ms()
        if update.rate_limit_s is not None:
            until = self.ex.limits.force(429, update.rate_limit_s, now)
            log.warning("fault.injected", kind="rate_limit_429", until_ms=until)
        if update.ban_s is not None:
            until = self.ex.limits.force(418, update.ban_s, now)
            log.warning("fault.injected", kind="ban_418", until_ms=until)
        if update.server_shutdown:
            grace = self.shutdown_grace_s
            if update.shutdown_grace_s is not None:
                grace = update.shutdown_grace_s
            self.server_shutdown(grace)
        elif update.half_open:
            for conn in self.conns:
                conn.half_open = True
            log.warning("fault.injected", kind="half_open", connections=len(self.conns))
        elif update.disconnect_ws:
            log.warning("fault.injected", kind="ws_disconnect", connections=len(self.conns))
            await self.disconnect_all()
        return _resp(msgspec.structs.asdict(config))

    async def faults_delete(self, request: web.Request) -> web.Response:
        self.ex.faults.clear()
        self.ex.clock.offset_ms = 0
        self.ex.limits.lift_forced()
        self.ex.apply_freeze(self.ex.now_ms() // 1000)
        log.warning("fault.cleared")
        return _resp(self.ex.faults.as_dict())

    async def sim_orders(self, request: web.Request) -> web.Response:
        rows = [
            {
                "orderId": o.order_id,
                "clientOrderId": o.client_order_id,
                "symbol": o.symbol,
                "side": o.side,
                "type": o.type,
                "status": o.status,
                "origQty": _d8(o.qty),
                "executedQty": _d8(o.executed_qty),
                "price": _d8(o.price),
                "time": o.time,
                "account": o.account,
            }
            for o in self.ex.book.history
        ]
        return _resp(rows)

    async def sim_limits(self, request: web.Request) -> web.Response:
        return _resp(self.ex.limits.snapshot())

    async def sim_info(self, request: web.Request) -> web.Response:
        return _resp(
            {
                **self.info,
                "serverTime": self.ex.now_ms(),
                "speed": self.ex.clock.speed,
                "startTime": self.ex.clock.start_ms,
                "symbols": list(self.ex.markets),
                "connections": len(self.conns),
            }
        )

    # --- market streams ------------------------------------------------------------------------

    def _subscribe(self, conn: Conn, stream: str) -> None:
        subs = self.subscribers.setdefault(stream, set())
        if not subs:
            self.ex.feed.add(stream, self.ex.now_ms() // 1000)
        subs.add(conn)
        conn.streams.add(stream)

    def _unsubscribe(self, conn: Conn, stream: str) -> None:
        conn.streams.discard(stream)
        subs = self.subscribers.get(stream)
        if subs is None:
            return
        subs.discard(conn)
        if not subs:
            del self.subscribers[stream]
            self.ex.feed.remove(stream)

    async def ws_streams(self, request: web.Request) -> web.StreamResponse:
        combined = request.path == "/stream"
        names: list[str] = []
        if combined:
            names = [s for s in request.query.get("streams", "").split("/") if s]
        elif request.match_info.get("streams"):
            names = [s for s in request.match_info["streams"].split("/") if s]
        listen_account = None
        if len(names) == 1 and names[0] in self.listen_keys:
            listen_account = self.listen_keys[names[0]]
            names = []
        if len(names) > MAX_STREAMS_PER_CONNECTION:
            return _resp({"code": 2, "msg": "too many streams"}, 400)
        # As Binance: a path that names no stream it serves (ccxt.pro connects to
        # /ws/<number> and subscribes by message) still opens a connection; it simply
        # carries nothing until a SUBSCRIBE.
        names = [n for n in names if self.ex.feed.valid(n)]
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20, compress=False)
        await ws.prepare(request)
        conn = Conn(ws, "listen-key" if listen_account else "market", combined, _transport(request))
        conn.listen_account = listen_account
        for name in names:
            self._subscribe(conn, name)
        window, count = 0, 0

        async def on_message(msg: WSMessage) -> bool:
            nonlocal window, count
            # §2.1: pings, pongs and control messages all count toward 5 per second
            second = int(time.monotonic())
            if second != window:
                window, count = second, 0
            count += 1
            if count > MAX_CONTROL_MESSAGES_PER_SECOND:
                log.info("ws.too_many_messages", limit=MAX_CONTROL_MESSAGES_PER_SECOND)
                await ws.close(code=1008, message=b"Too many requests")
                return False
            if msg.type == WSMsgType.TEXT:
                conn.push(self.proto.control(conn, msg.data))
            return True

        await self._serve(conn, on_message)
        return ws

    async def _serve(self, conn: Conn, on_message: Callable[[WSMessage], Awaitable[bool]]) -> None:
        """Run one connection: its writer, its keep-alive, and its incoming frames."""
        ws = conn.ws
        self.conns.add(conn)
        tasks = [
            asyncio.create_task(conn.writer(), name="ws-writer"),
            asyncio.create_task(conn.keepalive(self.ws_ping_interval), name="ws-keepalive"),
        ]
        try:
            async for msg in ws:
                if conn.half_open:  # the fault: nothing from this side, not even a pong
                    continue
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = time.monotonic()
                    continue
                if not await on_message(msg):
                    break
        finally:
            for name in list(conn.streams):
                self._unsubscribe(conn, name)
            conn.user_subs.clear()
            self.conns.discard(conn)
            await cancel_tasks(tasks)

    # --- WebSocket API (user data) ---------------------------------------------------------------

    async def ws_api(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or "?"
        try:  # §7: a WS-API connection costs 2 weight
            self.ex.limits.charge(ip, 2, self.ex.now_ms())
        except RateLimited as exc:
            return _error(exc)
        ws = web.WebSocketResponse(autoping=False, compress=False)
        await ws.prepare(request)
        conn = Conn(ws, "ws-api", transport=_transport(request))
        conn.ip = ip
        conn.return_rate_limits = request.query.get("returnRateLimits", "").lower() != "false"

        async def on_message(msg: WSMessage) -> bool:
            if msg.type == WSMsgType.TEXT:
                conn.push(await self._ws_api_call(conn, msg.data))
            return True

        await self._serve(conn, on_message)
        return ws

    async def _ws_api_call(self, conn: Conn, text: str) -> bytes:
        """A WS-API request: market data and trading through the REST handlers (see
        :mod:`.wsapi`); session and user-data methods through :class:`WsProtocol`."""
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return self.proto.ws_api(conn, text)
        if not isinstance(msg, dict):
            return self.proto.ws_api(conn, text)
        method = wsapi.METHODS.get(msg.get("method"))  # type: ignore[arg-type]
        params = msg.get("params") or {}
        if method is None or not isinstance(params, dict):
            return self.proto.ws_api(conn, text)
        req_id = msg.get("id")
        now = self.ex.now_ms()
        show = conn.return_rate_limits and params.get("returnRateLimits") is not False
        req = wsapi.as_request({k: v for k, v in params.items() if k != "returnRateLimits"})
        weight = _weight(method.http_method, method.path, req.params)
        try:
            used = self.ex.limits.charge(conn.ip, weight, now)
        except RateLimited as exc:
            limits = self._ws_rate_limits(conn.ip, now) if show else None
            return wsapi.error_reply(req_id, exc, now, limits)
        try:
            key = None
            if method.signed:
                logged_on = conn.logged_on
                if "signature" not in params and logged_on is not None:
                    if logged_on.key not in self.ex.active_keys():
                        raise REJECTED_KEY
                    key = logged_on
                else:
                    key = self.proto.verify(params)
            call = wsapi.WsCall(req, key, method.path)
            resp = await wsapi.run_handler(getattr(self, method.handler), call)
            if resp.status != 200:  # a fault's answer (lost order, 5xx)
                assert isinstance(resp.body, bytes)
                body = msgspec.json.decode(resp.body)
                raise ApiError(body["code"], body["msg"], resp.status)
        except ApiError as exc:
            limits = self._ws_rate_limits(conn.ip, now) if show else None
            return wsapi.error_reply(req_id, exc, now, limits)
        endpoint = endpoint_for(method.http_method, method.path)
        if endpoint is not None and endpoint.success_weight is not None:
            used = self.ex.limits.refund(
                conn.ip, weight - charged_weight(endpoint, req.params, success=True)
            )
        limits = None
        if show:
            limits = self._ws_rate_limits(conn.ip, now, used)
            if "X-MBX-ORDER-COUNT-10S" in resp.headers:
                for interval, num, limit, header in (
                    ("SECOND", 10, self.ex.limits.orders_per_10s, "X-MBX-ORDER-COUNT-10S"),
                    ("DAY", 1, self.ex.limits.orders_per_day, "X-MBX-ORDER-COUNT-1D"),
                ):
                    limits.append(
                        {
                            "rateLimitType": "ORDERS",
                            "interval": interval,
                            "intervalNum": num,
                            "limit": limit,
                            "count": int(resp.headers[header]),
                        }
                    )
        assert isinstance(resp.body, bytes)
        return wsapi.ok_reply(req_id, resp.body, limits)

    def _ws_rate_limits(self, ip: str, now: int, used: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.ex.limits.weight_per_minute,
                "count": self.ex.limits.used(ip, now) if used is None else used,
            }
        ]

    # --- fan-out ----------------------------------------------------------------------------------

    def fan_out(self, events: list[tuple[str, bytes, bool]]) -> None:
        """Frame each event once per form (raw, combined), share the frame between
        its subscribers, and hand every connection its frames in one batch."""
        if not events:
            return
        faults = self.ex.faults
        drop = faults.config.drop_kline_rate > 0
        pending: dict[Conn, list[bytes]] = {}
        for stream, raw, final in events:
            subs = self.subscribers.get(stream)
            if not subs:
                continue
            plain: bytes | None = None
            wrapped: bytes | None = None
            is_kline = drop and "@kline_" in stream
            for conn in subs:
                if conn.half_open:
                    continue
                if not final and len(conn.outbox) > OUTBOX_BACKLOG:
                    conn.skipped += 1
                    continue
                if is_kline and faults.drop_kline():
                    log.info("fault.injected", kind="drop_kline", stream=stream)
                    continue
                if conn.combined:
                    if wrapped is None:
                        prefix = self._wrap.get(stream)
                        if prefix is None:
                            prefix = self._wrap[stream] = (
                                b'{"stream":"' + stream.encode() + b'","data":'
                            )
                        wrapped = text_frame(prefix + raw + b"}")
                    frame = wrapped
                else:
                    if plain is None:
                        plain = text_frame(raw)
                    frame = plain
                batch = pending.get(conn)
                if batch is None:
                    pending[conn] = [frame]
                else:
                    batch.append(frame)
        for conn, frames in pending.items():
            conn.push_frames(frames, sum(map(len, frames)))

    def _deliver(self, events: list[UserEvent]) -> None:
        if not events:
            return
        for ev in events:
            sinks = [
                (conn, sub)
                for conn in self.conns
                for sub, account in conn.user_subs.items()
                if account == ev.account
            ]
            legacy = [c for c in self.conns if c.listen_account == ev.account]
            if not sinks and not legacy:
                continue
            if ev.kind == "order":
                payload = _json.encode(responses.execution_report(ev, self.ex.book.exec_id()))
            else:
                payload = _json.encode(
                    responses.account_position(ev, self.ex.book.accounts[ev.account])
                )
            for conn, sub in sinks:
                conn.push(b'{"subscriptionId":' + str(sub).encode() + b',"event":' + payload + b"}")
            for conn in legacy:
                conn.push(payload)

    async def disconnect_all(self) -> None:
        await _close_all(list(self.conns), b"disconnected by the simulator")

    def server_shutdown(self, grace_s: float) -> None:
        """Binance's ``serverShutdown`` (§2.1): notify every connection open now; they
        keep streaming, and only they are closed ``grace_s`` wall seconds later, so a
        client that opens and subscribes a replacement meanwhile rolls over without a
        gap (a connection opened after the notice is not affected)."""
        raw = _json.encode(ServerShutdownEvent(E=self.ex.now_ms()))
        notified = list(self.conns)
        for conn in notified:
            if conn.kind == "market" and conn.combined:
                conn.push(b'{"stream":"!serverShutdown","data":' + raw + b"}")
            else:
                conn.push(raw)
        log.warning(
            "fault.injected", kind="server_shutdown", connections=len(notified), grace_s=grace_s
        )
        task = asyncio.create_task(self._close_later(notified, grace_s), name="server-shutdown")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_later(self, conns: list[Conn], grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        still_open = [c for c in conns if not c.ws.closed]
        log.warning("fault.server_shutdown_closing", connections=len(still_open))
        await _close_all(still_open, b"server shutdown")

    async def close(self) -> None:
        """Stop pending shutdown closes and close every connection (process exit)."""
        await cancel_tasks(list(self._tasks))
        await self.disconnect_all()

    # --- the engine loop ----------------------------------------------------------------------------

    def _backlogged(self) -> set[str]:
        """Streams whose every subscriber is too far behind for open-candle updates."""
        return {
            stream
            for stream, subs in self.subscribers.items()
            if subs and all(len(c.outbox) > OUTBOX_BACKLOG for c in subs)
        }

    async def run_engine(self) -> None:
        """Advance the exchange every exchange second (batched at high speed)."""
        clock = self.ex.clock
        while True:
            try:
                events, user_events = self.ex.tick(self._backlogged())
            except Exception:
                log.exception("engine.tick_failed")
                events, user_events = [], []
            self.fan_out(events)
            self._deliver(user_events)
            next_second = (clock.now_ms() // 1000 + 1) * 1000
            await asyncio.sleep(min(0.05, max(0.002, clock.wall_seconds_until(next_second))))


async def _close_all(conns: list[Conn], message: bytes) -> None:
    """Close connections together (each close waits for the client's reply)."""
    results = await asyncio.gather(
        *(c.ws.close(code=1001, message=message) for c in conns), return_exceptions=True
    )
    for result in results:
        if isinstance(result, Exception):
            log.info("ws.close_failed", error=repr(result))


# What api.binance.com answers the listenKey endpoints since 2026-02-20: the front
# proxy's page, not a JSON error (observed: thrasher-corp/gocryptotrader#2190,
# unicorn-binance-websocket-api#399; 136 bytes).
_GONE_BODY = (
    b"<html>\r\n<head><title>410 Gone</title></head>\r\n<body>\r\n"
    b"<center><h1>410 Gone</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _gone() -> web.Response:
    return web.Response(status=410, body=_GONE_BODY, content_type="text/html")


def _weight(method: str, path: str, params: Mapping[str, str]) -> int:
    """Request weight of a REST call (or the WS-API method that shares its code)."""
    endpoint = endpoint_for(method, path)
    if endpoint is not None:
        return weight_of(endpoint, params)
    found = marketdata.weight_for(method, path, params)
    return found if found is not None else _EXTRA_WEIGHTS.get((method, path), 1)


async def _not_found_as_binance(handler: Handler, request: web.Request) -> web.StreamResponse:
    """Outside the REST prefixes: an unknown path is a bare 404 (never a 500)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404, body=b"")


def _transport(request: web.Request) -> RawTransport | None:
    """The connection's transport if it can take raw writes (asyncio's and uvloop's)."""
    transport = request.transport
    if transport is None or not all(
        hasattr(transport, name) for name in ("write", "get_write_buffer_size", "is_closing")
    ):
        return None
    return transport  # type: ignore[return-value]


def _d8(value: Any) -> str:
    from services.exchange_sim.book import d8

    return d8(value)
