"""Market WebSocket connections: sessions, subscriptions, reconnects and rollover.

Owns the sockets. A :class:`FeedConnection` is one slot of up to 1024 streams
(reference §2.1) that stays up for the life of the service: it runs a
:class:`_Session` (one WebSocket), reconnects with capped exponential backoff and
jitter when the session dies, and *rolls over* without a gap when the server says
``serverShutdown`` or the connection nears its 24 h limit: a replacement session is
opened and subscribed first, and only then is the old one closed (frames both
deliver in the overlap are deduplicated downstream). Pings are answered by the
websockets library; a session silent for longer than 1.5x its streams' *measured*
update period is treated as dead (a frozen feed or a half-open socket, DESIGN
"Traps"), so silence is noticed within 2x that period: 4 s on Binance's 2 s kline
streams, 2 s on a simulator run with ``--kline-update-ms 1000`` at speed 1.

The period is measured, not assumed: frames come in bursts (every stream of the
connection updates at the same exchange second), and the gaps between the starts of
consecutive bursts are the period. The largest of the recent gaps counts (jitter
makes the threshold longer, never shorter), with a floor (``min_stale_s``) for very
fast feeds (a sped-up simulator), and ``stale_after_s`` until enough gaps are known.

Frames are decoded with :func:`shared.binance.parsing.parse_ws_frame`; kline events
go to the :class:`MarketFeed`, control replies to the session's
:class:`ControlPlanner`, and anything else (an undecodable or unknown frame, a kline
the feed refuses as malformed) to the dead-letter callback; the session reads on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from shared.binance.backoff import backoff_delays
from shared.binance.parsing import UnknownFrame, parse_ws_frame
from shared.binance.schemas import KlineEvent, ServerShutdownEvent, WsErrorReply, WsReply
from shared.binance.streams import combined_stream_url, parse_stream_name
from shared.logging import get_logger

from .control import ControlPlanner
from .feed import MalformedKline, MarketFeed

log = get_logger(__name__)

DeadLetter = Callable[[str, str], None]  # (reason, raw excerpt)


def _excerpt(raw: str | bytes) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:2000]


@dataclass(slots=True)
class ConnectionOptions:
    ws_url: str
    messages_per_second: float = 3.0
    max_streams_per_message: int = 200
    url_streams_max: int = 100  # streams put in the URL; the rest are SUBSCRIBEd
    open_timeout_s: float = 10.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    stale_after_s: float = 7.0  # silence threshold until the update period is measured
    min_stale_s: float = 1.0  # floor of the measured threshold (very fast feeds)
    max_age_s: float = 23.5 * 3600  # roll over before the venue's 24 h cut
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 30.0


# Frames closer than this belong to one burst (one exchange second of every stream).
BURST_GAP_S = 0.1
_PERIOD_SAMPLES = 32  # burst-to-burst gaps remembered
_MIN_SAMPLES = 3  # gaps needed before the measured period is trusted
STALE_FACTOR = 1.5  # x the period; checked every threshold/8 -> noticed within ~1.7x


@dataclass(slots=True)
class UpdatePeriod:
    """The connection's measured update period: gaps between burst starts."""

    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=_PERIOD_SAMPLES))
    burst_start: float = 0.0
    last_frame: float = 0.0

    def on_frame(self, now: float) -> None:
        if now - self.last_frame > BURST_GAP_S:
            if self.burst_start:
                self.gaps.append(now - self.burst_start)
            self.burst_start = now
        self.last_frame = now

    def restart(self) -> None:
        """A new session: a gap across the reconnect is not an update period."""
        self.burst_start = self.last_frame = 0.0

    def stale_after(self, default_s: float, floor_s: float) -> float:
        if len(self.gaps) < _MIN_SAMPLES:
            return default_s
        return max(floor_s, STALE_FACTOR * max(self.gaps))


@dataclass(slots=True)
class ConnectionStats:
    reconnects: int = 0
    rollovers: int = 0
    stale_disconnects: int = 0
    messages: int = 0
    last_message_at: float = 0.0
    control_errors: int = 0


class StaleConnection(Exception):
    """No frame for longer than the streams' update period plus grace."""


class _Session:
    """One WebSocket: reads frames, sends control requests, watches for silence."""

    def __init__(self, owner: FeedConnection) -> None:
        self.owner = owner
        self.options = owner.options
        self.planner = ControlPlanner(
            messages_per_second=self.options.messages_per_second,
            max_streams_per_message=self.options.max_streams_per_message,
        )
        self.planner.want(owner.wanted)
        self.ready = asyncio.Event()  # subscriptions confirmed (or nothing wanted)
        self.shutdown = asyncio.Event()  # serverShutdown received
        self.received_data = False
        self.opened_at = 0.0
        self._wake = asyncio.Event()
        self._ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    def want(self, streams: set[str]) -> None:
        self.planner.want(streams)
        self._wake.set()

    async def run(self) -> None:
        initial = sorted(self.owner.wanted)[: self.options.url_streams_max]
        base = self.options.ws_url.rstrip("/")
        url = combined_stream_url(base, initial) if initial else f"{base}/stream"
        async with connect(
            url,
            open_timeout=self.options.open_timeout_s,
            ping_interval=self.options.ping_interval_s,
            ping_timeout=self.options.ping_timeout_s,
            close_timeout=2.0,
            max_size=2**22,
            max_queue=4096,
            compression=None,
        ) as ws:
            self._ws = ws
            self.opened_at = time.monotonic()
            self.owner.stats.last_message_at = self.opened_at
            self.owner.period.restart()
            self.planner.on_connected(initial)
            self._check_ready()
            log.info("ws.connected", conn=self.owner.cid, streams=len(self.owner.wanted))
            tasks = [
                asyncio.create_task(self._read(ws), name=f"ws-read-{self.owner.cid}"),
                asyncio.create_task(self._control(ws), name=f"ws-control-{self.owner.cid}"),
                asyncio.create_task(self._watch(), name=f"ws-watch-{self.owner.cid}"),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raise what ended the session
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _check_ready(self) -> None:
        if self.planner.synced():
            self.ready.set()

    async def _read(self, ws: ClientConnection) -> None:
        owner = self.owner
        feed = owner.feed
        stats = owner.stats
        async for raw in ws:
            now = time.monotonic()
            stats.messages += 1
            stats.last_message_at = now
            frame = parse_ws_frame(raw)
            if type(frame) is KlineEvent:
                owner.period.on_frame(now)
                self.received_data = True
                try:
                    feed.on_kline(frame, now)
                except MalformedKline as exc:
                    owner.dead_letter(f"malformed kline: {exc}", _excerpt(raw))
            elif isinstance(frame, WsReply | WsErrorReply):
                ok = isinstance(frame, WsReply)
                request = self.planner.on_reply(frame.id, ok)
                if not ok:
                    stats.control_errors += 1
                    log.warning(
                        "ws.control_error", conn=owner.cid, reply=str(frame), request=str(request)
                    )
                self._check_ready()
                self._wake.set()
            elif isinstance(frame, ServerShutdownEvent):
                log.info("ws.server_shutdown", conn=owner.cid)
                self.shutdown.set()
            elif isinstance(frame, UnknownFrame):
                owner.dead_letter(frame.reason, frame.raw)
            else:
                owner.dead_letter(f"unexpected frame {type(frame).__name__}", _excerpt(raw))

    async def _control(self, ws: ClientConnection) -> None:
        from shared.binance.streams import subscribe_request, unsubscribe_request

        while True:
            now = time.monotonic()
            for request in self.planner.due(now):
                build = subscribe_request if request.method == "SUBSCRIBE" else unsubscribe_request
                await ws.send(build(request.streams, request.id).decode())
                log.info(
                    "ws.control_sent",
                    conn=self.owner.cid,
                    method=request.method,
                    streams=len(request.streams),
                )
            self._check_ready()
            delay = self.planner.next_due_in(time.monotonic())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay if delay else 1.0)

    async def _watch(self) -> None:
        options = self.options
        while True:
            stale_after = self.owner.period.stale_after(options.stale_after_s, options.min_stale_s)
            await asyncio.sleep(min(1.0, stale_after / 8))
            if not self.planner.confirmed:
                continue  # nothing subscribed: silence is expected
            silent = time.monotonic() - max(self.owner.stats.last_message_at, self.opened_at)
            if silent > stale_after:
                self.owner.stats.stale_disconnects += 1
                log.warning(
                    "ws.silent", conn=self.owner.cid, silent_s=round(silent, 2),
                    threshold_s=round(stale_after, 2),
                )  # fmt: skip
                raise StaleConnection(f"no frame for {silent:.1f}s")


@dataclass(eq=False)
class FeedConnection:
    """One connection slot: a set of streams kept subscribed across sessions."""

    cid: int
    options: ConnectionOptions
    feed: MarketFeed
    dead_letter: DeadLetter
    wanted: set[str] = field(default_factory=set)
    stats: ConnectionStats = field(default_factory=ConnectionStats)
    sessions: list[_Session] = field(default_factory=list)
    period: UpdatePeriod = field(default_factory=UpdatePeriod)

    def want(self, streams: set[str]) -> None:
        self.wanted = set(streams)
        for session in self.sessions:
            session.want(self.wanted)

    def connected_streams(self) -> int:
        confirmed: set[str] = set()
        for session in self.sessions:
            if session._ws is not None:
                confirmed |= session.planner.confirmed
        return len(confirmed & self.wanted)

    def _pairs(self) -> list[tuple[str, str]]:
        out = []
        for name in self.wanted:
            parsed = parse_stream_name(name)
            if parsed is not None and parsed.symbol and parsed.interval:
                out.append((parsed.symbol, parsed.interval))
        return out

    async def run(self) -> None:
        """Keep a session up until cancelled."""
        delays = backoff_delays(
            self.options.backoff_base_s, self.options.backoff_cap_s, random.Random()
        )
        session = self._start()
        while True:
            task = session.task
            assert task is not None
            rollover = asyncio.create_task(self._rollover_due(session))
            try:
                await asyncio.wait([task, rollover], return_when=asyncio.FIRST_COMPLETED)
            finally:
                rollover.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await rollover
            if not task.done():
                session = await self._roll_over(session)
                continue
            error = task.exception() if not task.cancelled() else None
            self.sessions.remove(session)
            self.feed.on_disconnect(self._pairs())
            self.stats.reconnects += 1
            if session.received_data:
                delays = backoff_delays(
                    self.options.backoff_base_s, self.options.backoff_cap_s, random.Random()
                )
            delay = next(delays)
            log.warning(
                "ws.disconnected", conn=self.cid, error=repr(error), retry_in=round(delay, 3)
            )
            await asyncio.sleep(delay)
            session = self._start()

    def _start(self) -> _Session:
        session = _Session(self)
        session.task = asyncio.create_task(session.run(), name=f"ws-session-{self.cid}")
        self.sessions.append(session)
        return session

    async def _rollover_due(self, session: _Session) -> None:
        """Returns when ``session`` should be replaced (serverShutdown or max age)."""
        shutdown = asyncio.create_task(session.shutdown.wait())
        try:
            await asyncio.wait_for(shutdown, timeout=self.options.max_age_s)
        except TimeoutError:
            pass
        finally:
            shutdown.cancel()

    async def _roll_over(self, old: _Session) -> _Session:
        """Open the replacement, wait until it is subscribed, then close ``old``."""
        self.stats.rollovers += 1
        log.info("ws.rollover", conn=self.cid)
        new = self._start()
        assert new.task is not None and old.task is not None
        ready = asyncio.create_task(new.ready.wait())
        await asyncio.wait(
            [ready, new.task, old.task],
            timeout=self.options.open_timeout_s * 2,
            return_when=asyncio.FIRST_COMPLETED,
        )
        ready.cancel()
        if new.task.done() and not old.task.done():
            # The replacement failed: keep the old session while it lasts, try again.
            self.sessions.remove(new)
            log.warning("ws.rollover_failed", conn=self.cid, error=repr(new.task.exception()))
            await asyncio.sleep(self.options.backoff_base_s * (1 + random.random()))
            return old
        old.task.cancel()
        with contextlib.suppress(
            asyncio.CancelledError, WebSocketException, OSError, StaleConnection
        ):
            await old.task
        self.sessions.remove(old)
        return new

    async def close(self) -> None:
        tasks = [s.task for s in self.sessions if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.sessions.clear()
