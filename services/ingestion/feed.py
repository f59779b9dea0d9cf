"""Market frames in, candles and ticks out: the routing core of ingestion.

Owns the set of subscribed ``(symbol, interval)`` streams and their
:class:`~services.ingestion.sync.StreamSync`, routes each decoded kline event to its
stream, hands every update's price to the sink as a tick and every candle the
sequencing rules release to the sink as a closed candle. Backfill results come back
through :meth:`MarketFeed.on_backfill`. No I/O: the sink is anything with
``candle(c)`` and ``tick(symbol, price, event_time)`` (the Redis writer in the
service, a list in the tests), so recorded frames replay without a socket.

A kline event that decodes but cannot be a real candle (a value that is not a finite,
non-negative decimal; an open time off the interval's grid; a close time that does
not end the interval; an event time before the open or well past the close) raises
:class:`MalformedKline` before it touches any state: the connection dead-letters it
and reads on. Such a frame must never reach the sequencing, where a far or off-grid
open time would look like a hole, or, once accepted, block every real candle after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Protocol

from shared.binance.intervals import max_interval_ms, next_open_time, open_time_of
from shared.binance.parsing import kline_event_to_candle
from shared.binance.schemas import KlineEvent
from shared.messages import Candle

from .sync import BackfillRequest, StreamSync, SyncState


class MalformedKline(ValueError):
    """A kline event whose values cannot describe a real candle (dead-letter it)."""


_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")


def checked_candle(event: KlineEvent, bounds: dict[str, tuple[int, int, int]]) -> Candle:
    """The event as a :class:`Candle`, or :class:`MalformedKline` saying what is wrong.

    ``bounds`` caches, per interval, the last candle checked against the grid as
    ``(open time, next open time, latest acceptable event time)``: the updates of one
    candle share it, so the calendar arithmetic runs once per candle, not per event.
    """
    try:
        candle = kline_event_to_candle(event)
    except ValueError as exc:  # an unparsable decimal
        raise MalformedKline(str(exc)) from None
    for name in _FIELDS:
        value: Decimal = getattr(candle, name)
        if value.is_signed() or not value.is_finite():  # negative (or -0), NaN, Infinity
            raise MalformedKline(f"{name} {value} is not a finite non-negative decimal")
    interval, start = candle.interval, candle.open_time
    known = bounds.get(interval)
    if known is None or known[0] != start:
        if open_time_of(interval, start) != start:
            raise MalformedKline(f"open time {start} is not on the {interval} grid")
        end = next_open_time(interval, start)
        known = (start, end, end + max_interval_ms(interval))
        bounds[interval] = known
    if candle.close_time != known[1] - 1:
        raise MalformedKline(f"close time {candle.close_time} does not end the {interval} candle")
    if not start <= event.E <= known[2]:
        raise MalformedKline(f"event time {event.E} is outside candle {start}..{known[1] - 1}")
    return candle


class Sink(Protocol):
    def candle(self, candle: Candle) -> None: ...

    def tick(self, symbol: str, price: Decimal, event_time: int) -> None: ...


class MarketFeed:
    def __init__(
        self,
        sink: Sink,
        *,
        history: int = 500,
        max_backfill: int = 5000,
        max_attempts: int = 5,
    ) -> None:
        self.sink = sink
        self.history = history
        self.max_backfill = max_backfill
        self.max_attempts = max_attempts
        self.syncs: dict[tuple[str, str], StreamSync] = {}
        self.exchange_now = 0  # newest exchange event time seen on any stream
        self.last_seen: dict[str, float] = {}  # symbol -> local monotonic time of its last update
        self.backfill_pending = False  # set when a stream needs a backfill
        self.events = 0
        self.ignored = 0
        self._bounds: dict[str, tuple[int, int, int]] = {}  # see checked_candle

    # --- subscriptions ------------------------------------------------------------------
    def add_stream(self, symbol: str, interval: str, stored_last: int | None) -> StreamSync:
        sync = self.syncs.get((symbol, interval))
        if sync is None:
            sync = StreamSync(
                symbol,
                interval,
                history=self.history,
                max_backfill=self.max_backfill,
                max_attempts=self.max_attempts,
            )
            self.syncs[(symbol, interval)] = sync
            self.last_seen.setdefault(symbol, time.monotonic())
        sync.observe_stored(stored_last)
        return sync

    def remove_stream(self, symbol: str, interval: str) -> None:
        self.syncs.pop((symbol, interval), None)
        if not any(s == symbol for s, _ in self.syncs):
            self.last_seen.pop(symbol, None)

    def streams(self) -> set[tuple[str, str]]:
        return set(self.syncs)

    # --- live ---------------------------------------------------------------------------
    def on_kline(self, event: KlineEvent, received: float | None = None) -> None:
        """One kline event from a market connection; raises :class:`MalformedKline`
        (nothing changed) for one that cannot be a real candle."""
        k = event.k
        sync = self.syncs.get((k.s, k.i))
        if sync is None:
            self.ignored += 1  # a stream being unsubscribed, or not ours
            return
        candle = checked_candle(event, self._bounds)
        self.events += 1
        if self.exchange_now < event.E:
            self.exchange_now = event.E
        self.last_seen[k.s] = time.monotonic() if received is None else received
        self.sink.tick(k.s, candle.close, event.E)
        for closed in sync.on_update(candle):
            self.sink.candle(closed)
        if sync.state is SyncState.NEED_BACKFILL:
            self.backfill_pending = True

    def on_disconnect(self, pairs: Iterable[tuple[str, str]]) -> None:
        for pair in pairs:
            sync = self.syncs.get(pair)
            if sync is not None:
                sync.on_disconnect()

    # --- backfill -----------------------------------------------------------------------
    def backfills_due(self) -> list[tuple[StreamSync, BackfillRequest]]:
        """The backfills to start now (each marked in flight)."""
        self.backfill_pending = False
        out = []
        for sync in self.syncs.values():
            request = sync.request_backfill()
            if request is not None:
                out.append((sync, request))
        return out

    def on_backfill(
        self, sync: StreamSync, request: BackfillRequest, rows: list[Candle], exchange_now: int
    ) -> BackfillRequest | None:
        """REST rows for ``request``: writes what they release; returns the next page."""
        if exchange_now > self.exchange_now:
            self.exchange_now = exchange_now
        if self.syncs.get((sync.symbol, sync.interval)) is not sync:
            return None  # unsubscribed meanwhile
        out, next_request = sync.on_backfill(rows, self.exchange_now, request)
        for candle in out:
            self.sink.candle(candle)
        if sync.state is SyncState.NEED_BACKFILL:
            self.backfill_pending = True
        return next_request

    def on_backfill_failed(self, sync: StreamSync) -> None:
        sync.on_backfill_failed()

    def on_stored(self, symbol: str, interval: str, last_open: int) -> None:
        """A write reply: Redis holds up to ``last_open`` (another writer may be ahead)."""
        sync = self.syncs.get((symbol, interval))
        if sync is not None:
            sync.observe_stored(last_open)

    # --- figures ------------------------------------------------------------------------
    def stale_symbols(self, older_than_s: float, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        symbols = {s for s, _ in self.syncs}
        return sorted(
            s for s in symbols if now - self.last_seen.get(s, float("-inf")) > older_than_s
        )

    def figures(self) -> dict[str, int]:
        syncs = self.syncs.values()
        return {
            "backfilled_candles": sum(s.backfilled for s in syncs),
            "gaps_accepted": sum(s.gaps_accepted for s in syncs),
            "streams_backfilling": sum(1 for s in syncs if s.state is not SyncState.LIVE),
        }
