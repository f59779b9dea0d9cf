"""Warm-up depth: each series' candle list is kept and backfilled as deep as its bots need.

Runners record the warm-up their bots declare, per series, in ``market:warmup``
(:data:`shared.keys.MARKET_WARMUP`, the largest of them). For every series this
instance holds, :class:`Depth`

- sets the writer's list cap to ``max(candles_max, demand + margin)`` (the margin is
  room for an adopter's catch-up), so LTRIM follows demand;
- backfills into the past over REST (``GET /api/v3/klines`` with ``endTime``, pages of
  at most 1000, each request's weight reserved in the fleet budget like every other
  call) until the list holds the demand, prepending each page with
  ``candle_prepend.lua`` only while the list's oldest candle is still the one the page
  was fetched before (the list stays in order and gap-free);
- records, when a page comes back shorter than asked (the exchange has nothing older),
  the open time of the series' first candle in ``market:history-start``
  (:data:`shared.keys.MARKET_HISTORY_START`): the runner then seeds from what exists
  instead of waiting for a depth that can never come.

The forward path (a new stream's first page, holes) stays :mod:`.sync`'s; this module
only ever goes back from the list's oldest candle.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import msgspec
from redis.exceptions import NoScriptError

from shared import keys
from shared.binance.parsing import rest_klines_to_candles
from shared.logging import get_logger
from shared.messages import Candle, encode_json

from .rest import MarketRest
from .writer import MarketWriter

log = get_logger(__name__)

PREPEND_SCRIPT = resources.files(__package__).joinpath("candle_prepend.lua").read_text()
PAGE_LIMIT = 1000  # reference §3.4: klines limit max 1000

Pair = tuple[str, str]


class _OpenTime(msgspec.Struct):
    open_time: int


_open_time_decoder = msgspec.json.Decoder(_OpenTime)


@dataclass(frozen=True, slots=True)
class DepthRequest:
    """One page into the past: the ``limit`` candles that opened before ``head``."""

    head: int  # open time of the list's oldest candle when asked
    limit: int

    @property
    def end_time(self) -> int:
        return self.head - 1


def next_page(
    demand: int, length: int, head: int | None, history_start: int | None
) -> DepthRequest | None:
    """What to fetch so that a list of ``length`` candles starting at ``head`` holds
    ``demand``: None when it does, when it is empty (the forward path fills it first)
    or when it already starts at the exchange's first candle."""
    if head is None or length >= demand:
        return None
    if history_start is not None and head <= history_start:
        return None
    return DepthRequest(head, min(PAGE_LIMIT, demand - length))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Depth:
    def __init__(
        self,
        redis: Any,
        rest: MarketRest,
        writer: MarketWriter,
        *,
        candles_max: int,
        margin: int,
    ) -> None:
        self.redis = redis
        self.rest = rest
        self.writer = writer
        self.candles_max = candles_max
        self.margin = margin
        self.demand: dict[Pair, int] = {}
        self._sha = ""
        # figures
        self.pages = 0
        self.prepended = 0

    def cap(self, pair: Pair) -> int:
        return max(self.candles_max, self.demand.get(pair, 0) + self.margin)

    async def refresh(self, pairs: set[Pair]) -> None:
        """Read the demand of the series held and set their list caps."""
        ordered = sorted(pairs)
        values = (
            await self.redis.hmget(keys.MARKET_WARMUP, [keys.subscription(*p) for p in ordered])
            if ordered
            else []
        )
        demand: dict[Pair, int] = {}
        for pair, value in zip(ordered, values, strict=True):
            try:
                n = int(_text(value)) if value is not None else 0
            except ValueError:
                n = 0
            if n > 0:
                demand[pair] = n
        self.demand = demand
        self.writer.caps = {p: self.cap(p) for p in demand if self.cap(p) != self.candles_max}

    async def deepen(self, pair: Pair) -> int:
        """Backfill ``pair`` into the past until its list holds the demand (or the
        exchange has nothing older); returns the candles put in front."""
        symbol, interval = pair
        list_key = keys.candles(symbol, interval)
        member = keys.subscription(symbol, interval)
        added = 0
        while True:
            demand = self.demand.get(pair, 0)
            if not demand:
                return added
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.llen(list_key)
                pipe.lindex(list_key, 0)
                pipe.hget(keys.MARKET_HISTORY_START, member)
                length, first, start = await pipe.execute()
            head = None
            if first is not None:
                try:
                    head = _open_time_decoder.decode(first).open_time
                except (msgspec.DecodeError, msgspec.ValidationError):
                    return added  # the forward path's dead-lettering deals with it
            request = next_page(demand, int(length), head, int(start) if start else None)
            if request is None:
                return added
            rows = await self.rest.klines(
                symbol, interval, None, request.limit, end_time=request.end_time
            )
            self.pages += 1
            candles = [
                c
                for c in rest_klines_to_candles(symbol, interval, rows, request.head)
                if c.open_time < request.head
            ]
            if candles:
                done = await self._prepend(list_key, request.head, self.cap(pair), candles)
                if not done:
                    continue  # the list changed meanwhile: look again
                added += len(candles)
                self.prepended += len(candles)
            log.info(
                "depth.page",
                symbol=symbol,
                interval=interval,
                before=request.head,
                rows=len(candles),
                demand=demand,
            )
            if len(candles) < request.limit:
                first_open = candles[0].open_time if candles else request.head
                await self.redis.hset(keys.MARKET_HISTORY_START, member, first_open)
                log.info("depth.history_start", symbol=symbol, interval=interval, first=first_open)
                return added

    async def _prepend(self, list_key: str, head: int, cap: int, candles: list[Candle]) -> bool:
        args = [head, cap, *(encode_json(_closed(c)) for c in candles)]
        for _ in range(2):
            if not self._sha:
                self._sha = await self.redis.script_load(PREPEND_SCRIPT)
            try:
                done, _ = await self.redis.evalsha(self._sha, 1, list_key, *args)
                return bool(done)
            except NoScriptError:
                self._sha = ""
        raise NoScriptError("candle_prepend.lua could not be loaded")


def _closed(candle: Candle) -> Candle:
    return candle if candle.closed else msgspec.structs.replace(candle, closed=True)
