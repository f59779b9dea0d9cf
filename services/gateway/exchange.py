"""The signed REST client of the gateway -- the only importer of the signing code.

Every call: the circuit breaker may refuse it (nothing sent); its weight is reserved in
the fleet-wide budget (:mod:`shared.ratelimit`) first; it carries a timeout; the
``X-MBX-USED-WEIGHT-1M`` header corrects the budget; a 429/418 pauses every process
until Retry-After; transport failures map once, here, onto the error tree of
:mod:`shared.binance.errors` (not sent -> RetryableError, maybe sent ->
OutcomeUnknownError). Signed requests use the exchange clock (local time + offset,
synced from ``/api/v3/time``); a -1021 resyncs it and retries once.

Nothing secret leaves this module: the API key travels only in the request header, the
signature only in the URL, and no error message carries either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
import msgspec

from services.gateway.breaker import BreakerState, CircuitBreaker
from shared.binance import endpoints as ep
from shared.binance.errors import (
    AuthError,
    BinanceError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryableError,
    TimestampError,
    connection_error,
    error_from_response,
    weight_from_headers,
)
from shared.binance.schemas import (
    Account,
    CancelOrder,
    ExchangeInfo,
    MyTrade,
    OrderFull,
    QueryOrder,
    ServerTime,
)
from shared.binance.signing import (
    Signer,
    encode_params,
    signed_query,
    ws_api_signature_payload,
)
from shared.logging import get_logger
from shared.ratelimit import BudgetExhausted, OrderBudget, WeightBudget

log = get_logger(__name__)
T = TypeVar("T")


def _decode(body: bytes, kind: Any) -> Any:
    """A venue response as its Struct; an undecodable answer leaves the outcome unknown."""
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise OutcomeUnknownError(
            f"undecodable {getattr(kind, '__name__', kind)} response: {exc}"
        ) from None


class BreakerOpenError(RetryableError):
    """The circuit breaker is open: the request was not sent."""


class OrderDelayed(RetryableError):
    """The fleet's weight or order budget is spent: the order was not sent; retry later."""

    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class ExchangeClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        signer: Signer,
        weight: WeightBudget,
        orders: OrderBudget,
        breaker: CircuitBreaker,
        recv_window_ms: int = 5000,
        use_server_time: bool = True,
        on_breaker: Callable[[BreakerState, str], Any] | None = None,
        on_auth_error: Callable[[AuthError], Any] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self._api_key = api_key
        self._signer = signer
        self.weight = weight
        self.orders = orders
        self.breaker = breaker
        self.recv_window_ms = recv_window_ms
        self.use_server_time = use_server_time
        self.offset_ms = 0
        self.measured_offset_ms = 0
        self.time_synced_at = 0.0
        self.connected = False
        self.last_used_weight: int | None = None
        self.on_breaker = on_breaker
        self.on_auth_error = on_auth_error  # any signed call refused for its credentials
        self.monotonic = monotonic
        self.requests = 0
        # the deadline (exchange ms) of the last 418 ban this client was answered, so the
        # health can tell a ban from a 429 pause in the fleet's one pause key
        self.ban_seen_until = 0

    @property
    def signer_kind(self) -> str:
        return self._signer.kind

    def now_ms(self) -> int:
        """The exchange's clock as this gateway knows it."""
        return int(time.time() * 1000) + self.offset_ms

    # --- public endpoints --------------------------------------------------------------
    async def sync_time(self) -> int:
        """Measure the offset to the exchange clock (midpoint of the round trip)."""
        before = time.time() * 1000
        body = await self._call(ep.TIME, [], signed=False)
        after = time.time() * 1000
        server = _decode(body, ServerTime).serverTime
        self.measured_offset_ms = int(server - (before + after) / 2)
        if self.use_server_time:
            self.offset_ms = self.measured_offset_ms
        self.time_synced_at = self.monotonic()
        log.info(
            "exchange.time_synced", offset_ms=self.measured_offset_ms, used=self.use_server_time
        )
        return self.offset_ms

    async def exchange_info(self) -> ExchangeInfo:
        info: ExchangeInfo = _decode(
            await self._call(ep.EXCHANGE_INFO, [], signed=False), ExchangeInfo
        )
        return info

    # --- signed endpoints --------------------------------------------------------------
    async def new_order(self, params: Sequence[tuple[str, str]]) -> tuple[OrderFull, int]:
        """Place an order; returns the FULL response and the request's timestamp.

        The fleet's order budget is reserved first; when it is spent the order is not
        sent and :class:`OrderDelayed` says for how long.
        """
        try:
            await self.orders.try_reserve()
            await self.weight.try_reserve(ep.weight_of(ep.NEW_ORDER))
        except BudgetExhausted as exc:
            raise OrderDelayed(str(exc), exc.delay_s) from None
        sent_at: list[int] = []
        body = await self._call(ep.NEW_ORDER, params, signed=True, reserved=True, stamps=sent_at)
        return _decode(body, OrderFull), sent_at[-1]

    async def query_order(self, symbol: str, client_order_id: str) -> QueryOrder:
        body = await self._call(
            ep.QUERY_ORDER,
            [("symbol", symbol), ("origClientOrderId", client_order_id)],
            signed=True,
        )
        return _decode(body, QueryOrder)

    async def my_trades(self, symbol: str, order_id: int) -> list[MyTrade]:
        body = await self._call(
            ep.MY_TRADES, [("symbol", symbol), ("orderId", str(order_id))], signed=True
        )
        return _decode(body, list[MyTrade])

    async def my_trades_page(
        self,
        symbol: str,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        from_id: int | None = None,
        limit: int = 1000,
    ) -> list[MyTrade]:
        """One page of the account's trades of ``symbol`` (§3.12: a time range of at
        most 24 h, or from a trade id on); ``botfleet statement`` reads a period with it."""
        params = [("symbol", symbol), ("limit", str(limit))]
        for name, value in (("startTime", start_time), ("endTime", end_time), ("fromId", from_id)):
            if value is not None:
                params.append((name, str(value)))
        body = await self._call(ep.MY_TRADES, params, signed=True)
        return _decode(body, list[MyTrade])

    async def cancel_order(self, symbol: str, client_order_id: str) -> CancelOrder:
        body = await self._call(
            ep.CANCEL_ORDER,
            [("symbol", symbol), ("origClientOrderId", client_order_id)],
            signed=True,
        )
        return _decode(body, CancelOrder)

    async def open_orders(self) -> list[QueryOrder]:
        body = await self._call(ep.OPEN_ORDERS, [], signed=True)
        return _decode(body, list[QueryOrder])

    async def account(self) -> Account:
        body = await self._call(ep.ACCOUNT, [("omitZeroBalances", "true")], signed=True)
        return _decode(body, Account)

    def ws_api_params(self) -> dict[str, Any]:
        """Signed params of ``userDataStream.subscribe.signature`` (WS-API signing, §4:
        every param but the signature sorted, raw, not percent-encoded)."""
        params: dict[str, Any] = {
            "apiKey": self._api_key,
            "recvWindow": self.recv_window_ms,
            "timestamp": self.now_ms(),
        }
        params["signature"] = self._signer.sign(ws_api_signature_payload(params))
        return params

    # --- the one place a request is sent ------------------------------------------------
    async def _call(
        self,
        endpoint: ep.Endpoint,
        params: Sequence[tuple[str, str]],
        *,
        signed: bool,
        reserved: bool = False,
        stamps: list[int] | None = None,
    ) -> bytes:
        for attempt in (1, 2):
            try:
                return await self._send(
                    endpoint, params, signed=signed, reserved=reserved, stamps=stamps
                )
            except TimestampError:
                if attempt == 2 or not signed:
                    raise
                log.warning("exchange.timestamp_rejected", endpoint=endpoint.name)
                await self.sync_time()
                reserved = False
        raise AssertionError("unreachable")

    async def _send(
        self,
        endpoint: ep.Endpoint,
        params: Sequence[tuple[str, str]],
        *,
        signed: bool,
        reserved: bool,
        stamps: list[int] | None,
    ) -> bytes:
        now = self.monotonic()
        if not self.breaker.allow(now):
            raise BreakerOpenError(
                f"circuit breaker open; retry in {self.breaker.retry_in(now):.1f}s"
            )
        if not reserved:
            try:
                await self.weight.reserve(ep.weight_of(endpoint, dict(params)), max_wait_s=5.0)
            except BudgetExhausted as exc:
                self.breaker.probing = False
                raise OrderDelayed(str(exc), exc.delay_s) from None
        headers = {}
        if signed:
            timestamp = self.now_ms()
            if stamps is not None:
                stamps.append(timestamp)
            query = signed_query(
                params, self._signer, timestamp=timestamp, recv_window=self.recv_window_ms
            )
            headers["X-MBX-APIKEY"] = self._api_key
        else:
            query = encode_params(params)
        url = endpoint.path + (f"?{query}" if query else "")
        self.requests += 1
        sent = False
        try:
            request = self.http.build_request(endpoint.method, url, headers=headers)
            sent = True  # from here on the request may have reached the exchange
            response = await self.http.send(request)
            body = await response.aread()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self.connected = False
            self._failed(f"{endpoint.name}: {type(exc).__name__}")
            raise connection_error(
                f"{endpoint.name}: {type(exc).__name__}", request_sent=False
            ) from None
        except httpx.HTTPError as exc:
            self._failed(f"{endpoint.name}: {type(exc).__name__}")
            raise connection_error(
                f"{endpoint.name}: {type(exc).__name__}", request_sent=sent
            ) from None
        self.connected = True
        used = weight_from_headers(response.headers.items())
        if used is not None:
            self.last_used_weight = used
            await self.weight.correct_from_header(used)
        if response.status_code < 400:
            if self.breaker.success() and self.on_breaker:
                self.on_breaker(BreakerState.CLOSED, "exchange answering again")
            return body
        error = error_from_response(response.status_code, body, response.headers.items())
        if isinstance(error, RateLimitedError):
            # the fleet-wide pause handles it; an answering exchange is not an outage
            until = await self.weight.note_rate_limited(response.status_code, error.retry_after_s)
            if error.banned:
                self.ban_seen_until = max(self.ban_seen_until, until)
            self.breaker.success()
        elif isinstance(error, OutcomeUnknownError | RetryableError):
            self._failed(f"{endpoint.name}: HTTP {response.status_code} {error.code}")
        else:
            self.breaker.success()  # the exchange answered; a refusal is not an outage
            if isinstance(error, AuthError) and self.on_auth_error is not None:
                self.on_auth_error(error)
        raise error

    def _failed(self, why: str) -> None:
        if self.breaker.failure(self.monotonic()):
            log.error("exchange.breaker_open", why=why, cooldown_s=self.breaker.cooldown_s)
            if self.on_breaker:
                self.on_breaker(BreakerState.OPEN, why)

    def health(self) -> dict[str, Any]:
        now = self.monotonic()
        return {
            "exchange": "connected" if self.connected else "disconnected",
            "breaker": self.breaker.state(now).value,
            "breaker_trips": self.breaker.trips,
            "time_offset_ms": self.measured_offset_ms,
            "weight_used": self.last_used_weight if self.last_used_weight is not None else "",
            "signer": self.signer_kind,
            "requests": self.requests,
        }


def is_unknown(exc: BaseException) -> bool:
    return isinstance(exc, OutcomeUnknownError)


__all__ = ["BinanceError", "BreakerOpenError", "ExchangeClient", "OrderDelayed", "is_unknown"]
