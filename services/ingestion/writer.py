"""The one writer of market data into Redis: batched, pipelined, idempotent.

Owns the hot path's last step. Producers (the connection readers, the backfills)
call :meth:`MarketWriter.candle` and :meth:`MarketWriter.tick` without awaiting;
one task drains everything that accumulated during an event-loop turn into one
pipeline of EVALSHAs (``candle_append.lua`` per closed candle, ``tick_append.lua``
per symbol) plus one HSET of ``market:last-update``, so throughput does not depend
on round trips. Candles of a stream are sent in the order they were handed in; a
failed batch is retried whole with capped, jittered backoff (the candle script
refuses what is not newer, so a retry never doubles a candle).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from decimal import Decimal
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from shared import keys
from shared.binance.backoff import backoff_delays
from shared.logging import get_logger
from shared.messages import Candle, Tick, encode_json
from shared.redis import REDIS_ERRORS

log = get_logger(__name__)

CANDLE_SCRIPT = resources.files(__package__).joinpath("candle_append.lua").read_text()
TICK_SCRIPT = resources.files(__package__).joinpath("tick_append.lua").read_text()

# (symbol, interval, appended, last open time in Redis)
WriteResult = Callable[[str, str, bool, int], None]


class _Batch:
    __slots__ = ("candles", "last_update", "prices", "ticks", "times")

    def __init__(self) -> None:
        self.candles: list[Candle] = []
        self.ticks: dict[str, list[bytes]] = {}
        self.prices: dict[str, str] = {}
        self.last_update: dict[str, int] = {}
        self.times: list[int] = []  # event times, only when a benchmark asks

    def __bool__(self) -> bool:
        return bool(self.candles or self.ticks)


class MarketWriter:
    def __init__(
        self,
        redis: Any,
        *,
        candles_max: int = 500,
        candle_stream_maxlen: int = 10_000,
        tick_stream_maxlen: int = 1_000,
        on_result: WriteResult | None = None,
        on_flushed: Callable[[list[int], float], None] | None = None,
    ) -> None:
        self.redis = redis
        self.candles_max = candles_max
        # Longer lists for series whose bots declare a deeper warm-up (:mod:`.depth`).
        self.caps: dict[tuple[str, str], int] = {}
        self.candle_stream_maxlen = candle_stream_maxlen
        self.tick_stream_maxlen = tick_stream_maxlen
        self.on_result = on_result
        # Benchmarks: event times of everything in a batch and when Redis confirmed it.
        self.on_flushed = on_flushed
        self._batch = _Batch()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._candle_sha = ""
        self._tick_sha = ""
        self._last_tick: dict[str, tuple[int, Decimal]] = {}
        # figures
        self.candles_appended = 0
        self.candles_refused = 0
        self.ticks_written = 0
        self.batches = 0
        self.failures = 0

    # --- producers (no await) ----------------------------------------------------------
    def candle(self, candle: Candle) -> None:
        """Queue a closed candle; it is written after every candle queued before it."""
        self._batch.candles.append(candle)
        self._idle.clear()
        self._wake.set()

    def tick(self, symbol: str, price: Decimal, event_time: int) -> None:
        """Queue a price update (the same price at the same event time is written once)."""
        if self._last_tick.get(symbol) == (event_time, price):
            return
        self._last_tick[symbol] = (event_time, price)
        batch = self._batch
        data = encode_json(Tick(symbol=symbol, price=price, event_time=event_time))
        ticks = batch.ticks.get(symbol)
        if ticks is None:
            batch.ticks[symbol] = [data]
        else:
            ticks.append(data)
            if len(ticks) > self.tick_stream_maxlen:
                del ticks[0]
        batch.prices[symbol] = str(price)
        if self.on_flushed is not None:
            batch.times.append(event_time)
        if event_time > batch.last_update.get(symbol, 0):
            batch.last_update[symbol] = event_time
        self._idle.clear()
        self._wake.set()

    def pending(self) -> int:
        return len(self._batch.candles) + sum(len(t) for t in self._batch.ticks.values())

    async def drained(self) -> None:
        """Wait until everything queued so far is in Redis."""
        await self._idle.wait()

    # --- the writer task ---------------------------------------------------------------
    async def load_scripts(self) -> None:
        self._candle_sha = await self.redis.script_load(CANDLE_SCRIPT)
        self._tick_sha = await self.redis.script_load(TICK_SCRIPT)

    async def run(self) -> None:
        """Drain batches until cancelled."""
        if not self._candle_sha:
            await self._retry(self.load_scripts)
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._batch = self._batch, _Batch()
            if batch:
                await self._retry(lambda b=batch: self._flush(b))  # type: ignore[misc]
            if not self._batch:
                self._idle.set()

    async def _retry(self, step: Callable[[], Any]) -> None:
        delays = backoff_delays(0.05, 2.0, random.Random())
        while True:
            try:
                await step()
                return
            except NoScriptError:
                log.warning("writer.scripts_reloaded")
                await self.load_scripts()
            except (*REDIS_ERRORS, ResponseError) as exc:
                self.failures += 1
                delay = next(delays)
                log.warning("writer.failed", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def _flush(self, batch: _Batch) -> None:
        pipe = self.redis.pipeline(transaction=False)
        caps, default_cap = self.caps, self.candles_max
        for c in batch.candles:
            pipe.evalsha(
                self._candle_sha,
                2,
                keys.candles(c.symbol, c.interval),
                keys.candle_stream(c.symbol, c.interval),
                c.open_time,
                encode_json(c),
                caps.get((c.symbol, c.interval), default_cap) if caps else default_cap,
                self.candle_stream_maxlen,
                c.TYPE,
            )
        for symbol, ticks in batch.ticks.items():
            pipe.evalsha(
                self._tick_sha,
                2,
                keys.price(symbol),
                keys.tick_stream(symbol),
                self.tick_stream_maxlen,
                Tick.TYPE,
                batch.prices[symbol],
                *ticks,
            )
        if batch.last_update:
            pipe.hset(keys.MARKET_LAST_UPDATE, mapping=batch.last_update)
        results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, NoScriptError):
                raise result
        for result in results:
            if isinstance(result, Exception):
                raise result
        done_at = time.time()
        self.batches += 1
        self.ticks_written += sum(len(t) for t in batch.ticks.values())
        for c, (appended, last) in zip(batch.candles, results, strict=False):
            if appended:
                self.candles_appended += 1
            else:
                self.candles_refused += 1
            if self.on_result is not None:
                self.on_result(c.symbol, c.interval, bool(appended), int(last))
        if self.on_flushed is not None:
            self.on_flushed(batch.times, done_at)
