"""The Redis write path against a real redis-server: the candle script appends each
open time once and in order, the writer pipelines and survives a script flush."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from services.ingestion.service import read_last_open_times
from services.ingestion.writer import MarketWriter
from shared import keys
from shared.messages import Candle, Tick, decode

M = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % M


def candle(i: int, symbol: str = "BTCUSDT") -> Candle:
    t = T0 + i * M
    return Candle(symbol=symbol, interval="1m", open_time=t, close_time=t + M - 1,
                  open=Decimal(1), high=Decimal(2), low=Decimal("0.5"), close=Decimal("1.5"),
                  volume=Decimal(10), closed=True, event_time=t + M)  # fmt: skip


async def _run(writer: MarketWriter) -> asyncio.Task[None]:
    await writer.load_scripts()
    return asyncio.create_task(writer.run())


async def _open_times(redis: Any, symbol: str = "BTCUSDT") -> tuple[list[int], list[int]]:
    listed = [decode({"type": "candle", "data": raw}).open_time  # type: ignore[attr-defined]
              for raw in await redis.lrange(keys.candles(symbol, "1m"), 0, -1)]  # fmt: skip
    streamed = [decode(fields).open_time  # type: ignore[attr-defined]
                for _, fields in await redis.xrange(keys.candle_stream(symbol, "1m"))]  # fmt: skip
    return listed, streamed


async def test_each_open_time_is_appended_once_and_in_order(redis: Any) -> None:
    results: list[tuple[bool, int]] = []
    writer = MarketWriter(
        redis, candles_max=3, on_result=lambda s, i, ok, last: results.append((ok, last))
    )
    task = await _run(writer)
    for i in (1, 2, 2, 1, 3, 4, 4, 5):
        writer.candle(candle(i))
    await writer.drained()
    task.cancel()
    listed, streamed = await _open_times(redis)
    assert streamed == [T0 + i * M for i in (1, 2, 3, 4, 5)]
    assert listed == [T0 + i * M for i in (3, 4, 5)]  # trimmed to the cap
    assert [ok for ok, _ in results] == [True, True, False, False, True, True, False, True]
    assert results[3] == (False, T0 + 2 * M)


async def test_a_deleted_list_does_not_let_the_stream_get_a_duplicate(redis: Any) -> None:
    writer = MarketWriter(redis)
    task = await _run(writer)
    writer.candle(candle(1))
    await writer.drained()
    await redis.delete(keys.candles("BTCUSDT", "1m"))
    writer.candle(candle(1))
    writer.candle(candle(2))
    await writer.drained()
    task.cancel()
    _, streamed = await _open_times(redis)
    assert streamed == [T0 + M, T0 + 2 * M]


async def test_ticks_set_the_price_and_the_last_update_time(redis: Any) -> None:
    writer = MarketWriter(redis, tick_stream_maxlen=100)
    task = await _run(writer)
    for n in range(5):
        writer.tick("ETHUSDT", Decimal(f"10.{n}"), T0 + n)
    writer.tick("ETHUSDT", Decimal("10.4"), T0 + 4)  # the same update seen twice
    await writer.drained()
    task.cancel()
    assert await redis.get(keys.price("ETHUSDT")) == b"10.4"
    entries = await redis.xrange(keys.tick_stream("ETHUSDT"))
    ticks = [decode(fields) for _, fields in entries]
    assert [t.price for t in ticks if isinstance(t, Tick)] == [Decimal(f"10.{n}") for n in range(5)]
    assert await redis.hget(keys.MARKET_LAST_UPDATE, "ETHUSDT") == str(T0 + 4).encode()


async def test_the_writer_reloads_its_scripts_after_a_script_flush(redis: Any) -> None:
    writer = MarketWriter(redis)
    task = await _run(writer)
    writer.candle(candle(1))
    await writer.drained()
    await redis.script_flush()
    writer.candle(candle(2))
    await writer.drained()
    task.cancel()
    _, streamed = await _open_times(redis)
    assert streamed == [T0 + M, T0 + 2 * M]


async def test_the_last_stored_open_time_is_read_back(redis: Any) -> None:
    writer = MarketWriter(redis)
    task = await _run(writer)
    writer.candle(candle(7))
    await writer.drained()
    task.cancel()
    got = await read_last_open_times(redis, [("BTCUSDT", "1m"), ("XRPUSDT", "1m")])
    assert got == {("BTCUSDT", "1m"): T0 + 7 * M, ("XRPUSDT", "1m"): None}
