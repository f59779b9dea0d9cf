"""Ingestion's readers of Redis (the stored candles it resumes from, the members of
``market:subscriptions``) dead-letter a malformed entry with the reason and go on with
the good one after it (issue 14), against a real redis-server."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from services.ingestion.service import IngestionService, read_last_open_times
from services.ingestion.settings import IngestionSettings
from shared import keys
from shared.messages import Candle, DeadLetter, decode, encode, encode_json

M = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % M


def candle(i: int) -> Candle:
    t = T0 + i * M
    return Candle(symbol="BTCUSDT", interval="1m", open_time=t, close_time=t + M - 1,
                  open=Decimal(1), high=Decimal(2), low=Decimal("0.5"), close=Decimal("1.5"),
                  volume=Decimal(10), closed=True, event_time=t + M)  # fmt: skip


async def letters(redis: Any) -> list[DeadLetter]:
    out = []
    for _id, fields in await redis.xrange(keys.DEAD_LETTER):
        letter = decode(fields)
        assert isinstance(letter, DeadLetter)
        out.append(letter)
    return out


async def test_malformed_newest_candles_are_dead_lettered_and_the_good_one_before_counts(
    redis: Any,
) -> None:
    good = candle(7)
    await redis.rpush(keys.candles("BTCUSDT", "1m"), encode_json(good))
    await redis.rpush(keys.candles("BTCUSDT", "1m"), b"not json")
    poisoned = encode_json(good).replace(b'"close":"1.5"', b'"close":"NaN"')
    await redis.xadd(keys.candle_stream("BTCUSDT", "1m"), encode(candle(6)))
    await redis.xadd(keys.candle_stream("BTCUSDT", "1m"), {"type": "candle", "data": poisoned})
    got = await read_last_open_times(redis, [("BTCUSDT", "1m")])
    assert got == {("BTCUSDT", "1m"): good.open_time}  # the good one, read past the bad ones
    found = {letter.source: letter for letter in await letters(redis)}
    assert found[keys.candles("BTCUSDT", "1m")].entry_id == "-1"
    assert "invalid candle" in found[keys.candles("BTCUSDT", "1m")].reason
    stream_letter = found[keys.candle_stream("BTCUSDT", "1m")]
    assert "close NaN is not a finite number" in stream_letter.reason
    assert stream_letter.fields["data"] == poisoned.decode()
    assert stream_letter.service == "ingestion"


async def test_malformed_subscription_members_are_dead_lettered_and_the_good_one_is_wanted(
    redis: Any, clean_redis_url: str
) -> None:
    bad = ["btcusdt:1m", "BTC{X}USDT:1m", "ETHUSDT:1x", "no-interval"]
    await redis.sadd(keys.MARKET_SUBSCRIPTIONS, *bad, "BTCUSDT:1m")
    settings = IngestionSettings(redis_url=clean_redis_url, instance="malformed-test")
    async with httpx.AsyncClient() as http:
        service = IngestionService(settings, redis, http)
        await service.leases.refresh()  # holds the one shard
        wanted = await service.wanted_pairs()
        assert wanted == {("BTCUSDT", "1m")}  # the good member, past the bad ones
        # the dead letters are written by tasks the service owns: wait for them to end
        await asyncio.wait_for(asyncio.gather(*service._background), 10)
        await service.close()
    found = {letter.fields["member"]: letter for letter in await letters(redis)}
    assert set(found) == set(bad)
    assert all(x.source == keys.MARKET_SUBSCRIPTIONS and x.reason for x in found.values())
    assert service.bad_subscriptions == len(bad)
