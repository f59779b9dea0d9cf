"""The reads the dashboard's pages need (``services/api/controllers/pages.py``) on a real
redis-server: recent events newest first with their filters (a malformed entry is
skipped), and the exchange clock the page turns local times into exchange time with."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from shared import keys
from shared.exchange_clock import ExchangeClock
from shared.messages import Event, encode


async def test_events_are_listed_newest_first_and_filtered(
    client: AsyncTestClient[Any], redis: Any
) -> None:
    for n, (bot, level) in enumerate([("b1", "info"), ("b2", "warning"), ("b1", "error")]):
        event = Event(kind=f"k{n}", message=f"m{n}", level=level, bot_id=bot, ts=1000 + n)
        await redis.xadd(keys.EVENTS, encode(event))
    await redis.xadd(keys.EVENTS, {"type": "event", "data": b"{not json"})

    every = (await client.get("/api/v1/events")).json()
    assert [e["kind"] for e in every] == ["k2", "k1", "k0"]  # the bad entry is skipped
    assert every[0]["bot_id"] == "b1" and every[0]["level"] == "error" and every[0]["id"]
    one_bot = (await client.get("/api/v1/events", params={"bot_id": "b1"})).json()
    assert [e["kind"] for e in one_bot] == ["k2", "k0"]
    warnings = (await client.get("/api/v1/events", params={"level": "warning"})).json()
    assert [e["message"] for e in warnings] == ["m1"]
    newest = (await client.get("/api/v1/events", params={"limit": 1})).json()
    assert [e["kind"] for e in newest] == ["k2"]
    refused = await client.get("/api/v1/events", params={"limit": 0})
    assert refused.status_code == 400 and refused.json()["field"] == "limit"


async def test_the_clock_says_exchange_time_from_ingestions_sample(
    client: AsyncTestClient[Any], redis: Any
) -> None:
    unsampled = (await client.get("/api/v1/market/clock")).json()
    assert unsampled["sampled"] is False
    assert unsampled["now_exchange_ms"] == unsampled["now_local_ms"]

    # A simulator at 60x, sampled 10 s of our time ago at exchange time 1e12.
    local = unsampled["now_local_ms"] - 10_000
    sample = ExchangeClock(exchange_ms=1_000_000_000_000, local_ms=local, rate=60.0)
    await redis.hset(keys.MARKET_CLOCK, mapping=sample.to_fields())
    clock = (await client.get("/api/v1/market/clock")).json()
    assert clock["sampled"] is True and clock["rate"] == 60.0
    assert clock["exchange_ms"] == 1_000_000_000_000 and clock["local_ms"] == local
    elapsed = clock["now_local_ms"] - local
    assert clock["now_exchange_ms"] == 1_000_000_000_000 + elapsed * 60
