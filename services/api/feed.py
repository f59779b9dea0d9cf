"""The live feed: one reader fans Redis streams out to every connected client.

:class:`FeedHub` runs one loop (owned by the app's lifespan) that ``XREAD BLOCK``\\ s
``stream:executions``, ``stream:events``, the tick streams and the candle streams of
every ``market:subscriptions`` member, and puts each decoded message on the queue of
every subscriber. Prices are coalesced to the latest per symbol and flushed at most
every ``price_interval_s`` so a busy market cannot flood a browser. A subscriber whose
queue is full is dropped (its stream ends; the client reconnects) rather than slowing
the others. With no subscriber the loop idles and reads nothing. An entry that is not a
valid message goes to ``stream:dead-letter`` with the reason and the loop reads on
(issue 14); so does one of a type the feed does not show.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from services.api.repository import text
from shared import keys
from shared.logging import get_logger
from shared.messages import (
    Candle,
    Event,
    ExecutionReport,
    Message,
    MessageDecodeError,
    Tick,
    decode,
)
from shared.redis import REDIS_ERRORS, Redis, now_ms
from shared.streams import dead_letter

log = get_logger(__name__)

_to_builtins = msgspec.to_builtins


class FeedItem(msgspec.Struct, frozen=True):
    kind: str  # execution | event | price | candle
    data: dict[str, Any]
    stream: str = ""  # where it was read, and its entry id there (resume positions)
    entry_id: str = ""


# The durable streams a client can resume from (``Last-Event-ID``); prices and candles
# are current state, which a reconnecting client reloads, so they carry no event id.
RESUMABLE = (keys.EXECUTIONS, keys.EVENTS)
_ENTRY_ID = r"[0-9]{1,20}-[0-9]{1,20}"
# An SSE event id: the position in each resumable stream, "<executions>_<events>".
EVENT_ID_PATTERN = rf"^{_ENTRY_ID}_{_ENTRY_ID}$"


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Cursor:
    """A client's position in every resumable stream: the SSE ``id:`` it was last sent."""

    def __init__(self, positions: dict[str, str]) -> None:
        self.positions = dict(positions)

    @classmethod
    def parse(cls, event_id: str) -> Cursor:
        """From a ``Last-Event-ID`` matching :data:`EVENT_ID_PATTERN` (checked at the edge)."""
        return cls(dict(zip(RESUMABLE, event_id.split("_"), strict=True)))

    def event_id(self) -> str:
        return "_".join(self.positions[s] for s in RESUMABLE)

    def seen(self, item: FeedItem) -> bool:
        """True for an item at or before this position (a replayed one, met again live)."""
        at = self.positions.get(item.stream)
        return at is not None and entry_key(item.entry_id) <= entry_key(at)

    def advance(self, item: FeedItem) -> bool:
        """Move past ``item``; True when it is from a resumable stream (it gets an id)."""
        if item.stream not in self.positions:
            return False
        self.positions[item.stream] = item.entry_id
        return True


class Subscription:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[FeedItem | None] = asyncio.Queue(maxsize=maxsize)
        self.dropped = False

    def offer(self, item: FeedItem) -> bool:
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            return False

    async def get(self, timeout: float) -> FeedItem | None:
        """The next item, or None after ``timeout`` (send a keep-alive) or when dropped."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class FeedHub:
    def __init__(
        self,
        redis: Redis,
        *,
        block_ms: int = 1000,
        queue_size: int = 1000,
        price_interval_s: float = 0.25,
        refresh_s: float = 2.0,
    ) -> None:
        # redis-py's stubs type every command as sync-or-async; Any keeps await honest.
        self.redis: Any = redis
        self.block_ms = block_ms
        self.queue_size = queue_size
        self.price_interval_s = price_interval_s
        self.refresh_s = refresh_s
        self.subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._last_ids: dict[str, str] = {}
        self._prices: dict[str, FeedItem] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription(self.queue_size)
        self.subscribers.add(sub)
        self._wake.set()
        try:
            yield sub
        finally:
            self.subscribers.discard(sub)

    def cursor_now(self) -> Cursor:
        """Where a new subscriber starts: what the reader has passed, else this moment."""
        start = f"{now_ms()}-0"
        return Cursor({s: self._last_ids.get(s, start) for s in RESUMABLE})

    async def replay(self, cursor: Cursor, limit: int) -> tuple[list[FeedItem], bool]:
        """The resumable entries after ``cursor``, oldest first, and False when more than
        ``limit`` of a stream were missed (the client must reload; it gets the newest)."""
        items: list[FeedItem] = []
        complete = True
        for stream in RESUMABLE:
            entries = await self.redis.xrevrange(
                stream, "+", "(" + cursor.positions[stream], count=limit + 1
            )
            if len(entries) > limit:
                complete = False
                entries = entries[:limit]
            for entry_id, fields in reversed(entries):
                try:  # the live reader dead-letters bad entries; a replay only skips them
                    item = self._item(decode(fields))
                except MessageDecodeError:
                    continue
                if item is not None:
                    items.append(
                        FeedItem(item.kind, item.data, stream=stream, entry_id=text(entry_id))
                    )
        items.sort(key=lambda i: entry_key(i.entry_id))
        return items, complete

    def publish(self, item: FeedItem) -> None:
        for sub in list(self.subscribers):
            if not sub.offer(item):
                sub.dropped = True
                self.subscribers.discard(sub)
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(None)  # tells the connection to end
                log.warning("feed.subscriber_dropped", reason="queue full")

    async def _streams(self) -> dict[str, str]:
        members = await self.redis.smembers(keys.MARKET_SUBSCRIPTIONS)
        wanted = [keys.EXECUTIONS, keys.EVENTS]
        for member in members:
            try:
                symbol, interval = keys.parse_subscription(text(member))
                wanted.append(keys.tick_stream(symbol))
                wanted.append(keys.candle_stream(symbol, interval))
            except ValueError:
                continue
        start = f"{now_ms()}-0"
        return {s: self._last_ids.get(s, start) for s in wanted}

    async def _entry(self, stream: str, entry_id: Any, fields: dict[Any, Any]) -> FeedItem | None:
        """The entry as a feed item, or None after dead-lettering it with the reason."""
        try:
            message = decode(fields)
            item = self._item(message)
            if item is None:
                raise MessageDecodeError(f"unexpected message type {message.TYPE!r} on {stream}")
        except MessageDecodeError as exc:
            try:
                await dead_letter(self.redis, stream, entry_id, fields, exc.reason, service="api")
            except REDIS_ERRORS as err:  # the letter is lost; the entry is skipped anyway
                log.warning("feed.dead_letter_failed", reason=exc.reason, error=str(err))
            return None
        return item

    def _item(self, message: Message) -> FeedItem | None:
        data = _to_builtins(message)
        if isinstance(message, ExecutionReport):
            return FeedItem("execution", data)
        if isinstance(message, Event):
            return FeedItem("event", data)
        if isinstance(message, Tick):
            return FeedItem(
                "price",
                {"symbol": message.symbol, "price": str(message.price), "ts": message.event_time},
            )
        if isinstance(message, Candle):
            return FeedItem("candle", data)
        return None

    async def run(self) -> None:
        """Read and fan out until cancelled; Redis errors back off (capped, jittered)."""
        delay = 0.1
        streams: dict[str, str] = {}
        refreshed = 0.0
        flushed = 0.0
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # A cancellation that lands in a blocking XREAD can be swallowed by
                # redis-py (the call returns or fails as a connection error); without
                # this the reader would outlive its owner, parked on the wake event.
                raise asyncio.CancelledError
            if not self.subscribers:
                self._last_ids.clear()
                self._wake.clear()
                await self._wake.wait()
                refreshed = 0.0
            try:
                if loop.time() - refreshed >= self.refresh_s:
                    streams = await self._streams()
                    refreshed = loop.time()
                block = int(self.price_interval_s * 1000) if self._prices else self.block_ms
                replies = await self.redis.xread(streams, block=block, count=500)
                delay = 0.1
            except REDIS_ERRORS as exc:
                log.warning("feed.redis_error", error=type(exc).__name__, retry_in=round(delay, 2))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)
                continue
            for stream, entries in replies or []:
                name = text(stream)
                for entry_id, fields in entries:
                    streams[name] = self._last_ids[name] = text(entry_id)
                    item = await self._entry(name, entry_id, fields)
                    if item is None:
                        continue
                    item = FeedItem(item.kind, item.data, stream=name, entry_id=text(entry_id))
                    if item.kind == "price":
                        self._prices[item.data["symbol"]] = item
                    else:
                        self.publish(item)
            if self._prices and loop.time() - flushed >= self.price_interval_s:
                for item in self._prices.values():
                    self.publish(item)
                self._prices.clear()
                flushed = loop.time()
