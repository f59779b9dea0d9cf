"""The signed REST client with an injected transport (httpx.MockTransport) and the real
fleet budget in Redis: -1021 resync and one retry, transport failures mapped to
"not sent" or "outcome unknown", the breaker, 429 pausing the fleet, no secret in errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.gateway.breaker import CircuitBreaker
from services.gateway.exchange import BreakerOpenError, ExchangeClient, OrderDelayed
from shared import keys
from shared.binance.errors import OutcomeUnknownError, RateLimitedError, RetryableError
from shared.binance.signing import HmacSigner, signature_payload, verify_hmac
from shared.ratelimit import OrderBudget, WeightBudget

SECRET = "unit-test-secret-0123456789abcdef"
API_KEY = "unit-test-api-key-0123456789abcdef"
ORDER = (
    b'{"symbol":"BTCUSDT","orderId":1,"clientOrderId":"bf-1","transactTime":1,"price":"0",'
    b'"origQty":"0.001","executedQty":"0.001","cummulativeQuoteQty":"50","status":"FILLED",'
    b'"timeInForce":"GTC","type":"MARKET","side":"BUY","fills":[]}'
)
PARAMS = [
    ("symbol", "BTCUSDT"),
    ("side", "BUY"),
    ("type", "MARKET"),
    ("quantity", "0.001"),
    ("newClientOrderId", "bf-1"),
]


def make(
    redis: Any, handler: Callable[[httpx.Request], httpx.Response], failures: int = 3
) -> tuple[ExchangeClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.AsyncClient(base_url="http://venue", transport=httpx.MockTransport(record))
    client = ExchangeClient(
        http,
        api_key=API_KEY,
        signer=HmacSigner(SECRET),
        weight=WeightBudget(redis),
        orders=OrderBudget(redis),
        breaker=CircuitBreaker(failures, 30),
    )
    return client, seen


def time_or(
    answer: Callable[[httpx.Request], httpx.Response],
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/time":
            return httpx.Response(200, json={"serverTime": 1_700_000_000_000})
        return answer(request)

    return handler


async def test_signed_order_carries_key_header_and_a_valid_signature(redis: Any) -> None:
    client, seen = make(
        redis, lambda r: httpx.Response(200, content=ORDER, headers={"X-MBX-USED-WEIGHT-1M": "7"})
    )
    order, _ts = await client.new_order(PARAMS)
    assert order.status == "FILLED"
    request = seen[0]
    assert request.headers["X-MBX-APIKEY"] == API_KEY
    query = request.url.query.decode()
    payload, _, signature = query.rpartition("&signature=")
    assert verify_hmac(SECRET, signature_payload(payload), signature)
    assert client.health()["weight_used"] == 7


async def test_timestamp_rejection_resyncs_the_clock_and_retries_once(redis: Any) -> None:
    answers = iter(
        [
            httpx.Response(400, json={"code": -1021, "msg": "Timestamp outside recvWindow."}),
            httpx.Response(200, content=ORDER),
        ]
    )
    client, seen = make(redis, time_or(lambda r: next(answers)))
    order, _ts = await client.new_order(PARAMS)
    assert order.orderId == 1
    assert [r.url.path for r in seen] == ["/api/v3/order", "/api/v3/time", "/api/v3/order"]
    assert client.offset_ms != 0


async def test_5xx_is_an_unknown_outcome_and_connect_failure_is_not_sent(redis: Any) -> None:
    client, _ = make(redis, lambda r: httpx.Response(503, text="busy"))
    with pytest.raises(OutcomeUnknownError):
        await client.new_order(PARAMS)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, _ = make(redis, refuse)
    with pytest.raises(RetryableError) as info:
        await client.query_order("BTCUSDT", "bf-1")
    assert not isinstance(info.value, OutcomeUnknownError)

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, _ = make(redis, timeout)
    with pytest.raises(OutcomeUnknownError) as unknown:
        await client.new_order(PARAMS)
    assert SECRET not in str(unknown.value) and "signature" not in str(unknown.value)


async def test_repeated_failures_open_the_breaker_and_nothing_more_is_sent(redis: Any) -> None:
    client, seen = make(redis, lambda r: httpx.Response(500, text="down"), failures=2)
    for _ in range(2):
        with pytest.raises(OutcomeUnknownError):
            await client.query_order("BTCUSDT", "bf-1")
    with pytest.raises(BreakerOpenError):
        await client.query_order("BTCUSDT", "bf-1")
    assert len(seen) == 2
    assert client.health()["breaker"] == "open"


async def test_a_429_pauses_every_process_and_the_next_order_reports_its_delay(redis: Any) -> None:
    client, seen = make(
        redis,
        lambda r: httpx.Response(
            429,
            json={"code": -1003, "msg": "Too much request weight used"},
            headers={"Retry-After": "30"},
        ),
    )
    with pytest.raises(RateLimitedError):
        await client.query_order("BTCUSDT", "bf-1")
    assert int(await redis.get(keys.RATELIMIT_BAN)) > 0  # the whole fleet pauses
    with pytest.raises(OrderDelayed) as delayed:
        await client.new_order(PARAMS)
    assert 25 < delayed.value.delay_s <= 31
    assert len(seen) == 1  # the order never left
