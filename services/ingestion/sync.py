"""Per-stream candle sequencing: which closed candles to write, and when to backfill.

Owns the one invariant the whole fleet trusts (DESIGN "Redis contract"): the candle
list and stream of a ``SYMBOL:INTERVAL`` receive every open time exactly once, in
order, with no gap. Pure: updates and REST results go in, candles to write and
backfill requests come out; tests replay recorded frames without a socket.

The rule is contiguity against ``last_written`` (the open time of the newest candle
handed to the writer; the writer's Lua script refuses anything not newer, so a
duplicate can never reach Redis even if this state is behind):

- a live update whose open time is *after* ``next_open(last_written)`` means candles
  are missing (a reconnect, a dropped frame, a close seen without ``x: true``): the
  stream needs a backfill from ``next_open(last_written)``;
- a live ``x: true`` close exactly at ``next_open(last_written)`` is written;
- anything older is a duplicate and ignored;
- while a backfill is pending, live closes are *held*; when the REST rows arrive the
  closed rows are written oldest first, then the held closes that follow without a
  hole. A hole that REST does not fill (REST behind the stream) triggers another
  backfill; after ``max_attempts`` the hole is accepted and counted (a halted
  market has genuine holes), so the feed never stalls forever.

After a reconnect nothing special is needed: the first update tells whether a
candle was missed, and only then is REST asked (a short blip costs no weight).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from shared.binance.intervals import max_interval_ms, next_open_time
from shared.messages import Candle


class SyncState(enum.Enum):
    LIVE = "live"  # contiguous: live closes are written as they come
    NEED_BACKFILL = "need_backfill"  # a hole was found; the shell should start a backfill
    BACKFILLING = "backfilling"  # a REST request is in flight; live closes are held


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """Ask REST for klines: from ``start_time`` (None: the most recent ``limit``)."""

    symbol: str
    interval: str
    start_time: int | None
    limit: int


@dataclass(slots=True)
class StreamSync:
    """Sequencing state of one ``SYMBOL:INTERVAL``."""

    symbol: str
    interval: str
    last_written: int | None = None
    history: int = 500  # candles fetched when nothing is stored
    max_backfill: int = 5000  # oldest candle a backfill goes back to, in intervals
    page_limit: int = 1000  # §3.4: klines limit max 1000
    max_attempts: int = 5  # backfills that may fail to close a hole before it is accepted
    state: SyncState = SyncState.LIVE
    current_open: int | None = None  # open time of the newest live update seen
    exchange_now: int = 0  # newest exchange time seen (event times, server time)
    held: dict[int, Candle] = field(default_factory=dict)
    attempts: int = 0
    # figures
    written: int = 0
    backfilled: int = 0
    gaps_accepted: int = 0
    duplicates: int = 0

    # --- live ---------------------------------------------------------------------------
    def on_update(self, candle: Candle) -> list[Candle]:
        """A live kline update; returns the closed candles to write now (0 or 1)."""
        if candle.event_time > self.exchange_now:
            self.exchange_now = candle.event_time
        if self.current_open is None or candle.open_time > self.current_open:
            self.current_open = candle.open_time
        if self.state is not SyncState.LIVE:
            if candle.closed:
                self.held[candle.open_time] = candle
            return []
        if self.last_written is None:
            return self._hole(candle)
        expected = next_open_time(self.interval, self.last_written)
        if candle.open_time > expected:
            return self._hole(candle)
        if candle.open_time < expected:
            if candle.closed:
                self.duplicates += 1
            return []
        if candle.closed:
            return [self._write(candle)]
        return []

    def _hole(self, candle: Candle) -> list[Candle]:
        if candle.closed:
            self.held[candle.open_time] = candle
        self.state = SyncState.NEED_BACKFILL
        return []

    def _write(self, candle: Candle) -> Candle:
        self.last_written = candle.open_time
        self.written += 1
        return candle

    # --- backfill -----------------------------------------------------------------------
    def observe_stored(self, last_open_time: int | None) -> None:
        """What Redis holds (read at start, or a script reply): never go backwards."""
        if last_open_time is not None and (
            self.last_written is None or last_open_time > self.last_written
        ):
            self.last_written = last_open_time

    def request_backfill(self) -> BackfillRequest | None:
        """The REST request to make, if a backfill is needed; marks it in flight."""
        if self.state is not SyncState.NEED_BACKFILL:
            return None
        self.state = SyncState.BACKFILLING
        return self._next_request()

    def _next_request(self) -> BackfillRequest:
        if self.last_written is None:
            return BackfillRequest(self.symbol, self.interval, None, min(self.history, 1000))
        start = next_open_time(self.interval, self.last_written)
        if self.exchange_now:
            floor = self.exchange_now - self.max_backfill * max_interval_ms(self.interval)
            start = max(start, floor)
        return BackfillRequest(self.symbol, self.interval, start, self.page_limit)

    def on_backfill(
        self, rows: list[Candle], exchange_now: int, request: BackfillRequest
    ) -> tuple[list[Candle], BackfillRequest | None]:
        """REST rows (oldest first) for ``request``: the candles to write, in order, and
        the next page to fetch (None when the backfill is over).

        A row counts as closed when ``exchange_now`` is past its close time.
        """
        if exchange_now > self.exchange_now:
            self.exchange_now = exchange_now
        now = self.exchange_now
        out: list[Candle] = []
        last_closed_row = None
        for row in sorted(rows, key=lambda c: c.open_time):
            if now <= row.close_time:
                break  # the still-open candle and anything after it
            last_closed_row = row.open_time
            if self.last_written is None or row.open_time > self.last_written:
                closed = row if row.closed else _as_closed(row)
                out.append(self._write(closed))
                self.backfilled += 1
        full_page = request.start_time is not None and len(rows) >= request.limit
        if full_page and last_closed_row is not None and last_closed_row == rows[-1].open_time:
            return out, self._next_request()
        out.extend(self._release_held())
        return out, None

    def _release_held(self) -> list[Candle]:
        out: list[Candle] = []
        for open_time in sorted(self.held):
            candle = self.held[open_time]
            if self.last_written is not None and open_time <= self.last_written:
                del self.held[open_time]
                self.duplicates += 1
                continue
            if (
                self.last_written is not None
                and next_open_time(self.interval, self.last_written) == open_time
            ):
                del self.held[open_time]
                out.append(self._write(candle))
                continue
            break
        if not self.held and not self._behind():
            self.state = SyncState.LIVE
            self.attempts = 0
            return out
        self.attempts += 1
        if self.attempts >= self.max_attempts and self.held:
            # REST could not fill the hole repeatedly: accept it rather than stall.
            self.gaps_accepted += 1
            for open_time in sorted(self.held):
                out.append(self._write(self.held.pop(open_time)))
            self.state = SyncState.LIVE
            self.attempts = 0
            return out
        self.state = SyncState.NEED_BACKFILL
        return out

    def _behind(self) -> bool:
        """Whether the live stream has shown a candle beyond the next one to write."""
        if self.current_open is None:
            return False
        if self.last_written is None:
            return True
        return self.current_open > next_open_time(self.interval, self.last_written)

    def on_backfill_failed(self) -> None:
        """The REST request failed; the shell retries after a backoff."""
        if self.state is SyncState.BACKFILLING:
            self.state = SyncState.NEED_BACKFILL

    def on_disconnect(self) -> None:
        """The connection carrying this stream went away: forget the in-progress candle
        (the first update after reconnecting decides whether a backfill is needed)."""
        self.current_open = None


def _as_closed(candle: Candle) -> Candle:
    import msgspec

    return msgspec.structs.replace(candle, closed=True)
