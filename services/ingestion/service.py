"""The loops of one ingestion process, wired around the pure core.

Owns the running state: the writer task, one task per market connection, the
subscription reconcile (pub/sub notification + a periodic pass), shard leases, the
backfills, the hourly exchangeInfo refresh and the health figures. Every loop
survives Redis and exchange errors (logged, retried with capped jittered backoff);
every task is owned here and cancelled on :meth:`IngestionService.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import httpx

from shared import keys
from shared.binance.backoff import backoff_delays
from shared.binance.errors import BinanceError, RateLimitedError
from shared.binance.intervals import is_interval
from shared.binance.parsing import rest_klines_to_candles
from shared.binance.rules import rules_to_json
from shared.binance.streams import kline_stream, parse_stream_name
from shared.exchange_clock import ExchangeClock, next_sample
from shared.logging import get_logger
from shared.messages import Candle, MessageDecodeError, decode
from shared.ratelimit import BudgetExhausted, WeightBudget, rules_from_exchange_info
from shared.redis import REDIS_ERRORS, now_ms
from shared.streams import dead_letter

from .connection import ConnectionOptions, FeedConnection
from .control import assign_streams, shard_of
from .depth import Depth
from .feed import MarketFeed
from .leases import ShardLeases
from .rest import MarketRest
from .settings import IngestionSettings
from .sync import BackfillRequest, StreamSync
from .writer import MarketWriter

log = get_logger(__name__)

KLINE_UPDATE_PERIOD_S = 2.0  # reference §2.3: 2000 ms for every interval but 1s


LOOK_BACK = 5  # stored candles read past malformed ones when finding the newest


async def read_last_open_times(
    redis: Any, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], int | None]:
    """Open time of the newest stored candle of each stream (list, else stream).

    A malformed entry among the newest is dead-lettered with the reason and read past,
    so the newest good candle still counts."""
    if not pairs:
        return {}
    pipe = redis.pipeline(transaction=False)
    for symbol, interval in pairs:
        pipe.lrange(keys.candles(symbol, interval), -LOOK_BACK, -1)
        pipe.xrevrange(keys.candle_stream(symbol, interval), count=LOOK_BACK)
    results = await pipe.execute()
    out: dict[tuple[str, str], int | None] = {}
    bad: list[tuple[str, Any, dict[Any, Any], str]] = []
    for i, (symbol, interval) in enumerate(pairs):
        listed, entries = results[2 * i], results[2 * i + 1]
        # list elements are named by their index from the end (-1: the newest)
        elements = [
            (-n, {b"type": Candle.TYPE, b"data": raw}) for n, raw in enumerate(listed[::-1], 1)
        ]
        newest = [
            _newest_open_time(keys.candles(symbol, interval), elements, bad),
            _newest_open_time(keys.candle_stream(symbol, interval), entries, bad),
        ]
        found = [c for c in newest if c is not None]
        out[(symbol, interval)] = max(found) if found else None
    for source, entry_id, fields, reason in bad:
        try:
            await dead_letter(redis, source, entry_id, fields, reason, service="ingestion")
        except REDIS_ERRORS as exc:
            log.warning("dead_letter.failed", reason=reason, error=str(exc))
    return out


def _newest_open_time(
    source: str,
    entries: list[tuple[Any, dict[Any, Any]]],
    bad: list[tuple[str, Any, dict[Any, Any], str]],
) -> int | None:
    """Open time of the first (newest) entry that is a candle; the ones before it go
    to ``bad`` with the reason."""
    for entry_id, fields in entries:
        try:
            message = decode(fields)
            if not isinstance(message, Candle):
                raise MessageDecodeError(f"expected candle, got {message.TYPE}")
        except MessageDecodeError as exc:
            bad.append((source, entry_id, fields, exc.reason))
            continue
        return message.open_time
    return None


class IngestionService:
    def __init__(self, settings: IngestionSettings, redis: Any, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.redis = redis
        self.instance = settings.instance
        self.writer = MarketWriter(
            redis,
            candles_max=settings.ingestion_candles_max,
            candle_stream_maxlen=settings.ingestion_candle_stream_maxlen,
            tick_stream_maxlen=settings.ingestion_tick_stream_maxlen,
            on_result=self._on_write_result,
        )
        self.feed = MarketFeed(
            self.writer,
            history=settings.ingestion_history,
            max_backfill=settings.ingestion_max_backfill,
        )
        self.budget = WeightBudget(
            redis,
            limit_per_minute=settings.ingestion_weight_limit,
            margin=settings.ingestion_weight_margin,
            # Backfill yields to orders: it may fill only part of each minute.
            background=True,
        )
        self.rest = MarketRest(http, self.budget)
        self.depth = Depth(
            redis,
            self.rest,
            self.writer,
            candles_max=settings.ingestion_candles_max,
            margin=settings.ingestion_candles_margin,
        )
        self.depth_wake = asyncio.Event()
        self._deepening: set[tuple[str, str]] = set()
        self.leases = ShardLeases(
            redis,
            self.instance,
            shards=settings.ingestion_shards,
            ttl_s=settings.ingestion_lease_ttl_s,
            max_shards=settings.ingestion_max_shards,
        )
        self.options = ConnectionOptions(
            ws_url=settings.ws_url,
            messages_per_second=settings.ingestion_control_messages_per_second,
            stale_after_s=KLINE_UPDATE_PERIOD_S + settings.ingestion_stale_grace_s,
            max_age_s=settings.ingestion_connection_max_age_s,
            backoff_base_s=settings.ingestion_reconnect_base_s,
            backoff_cap_s=settings.ingestion_reconnect_cap_s,
        )
        self.connections: dict[int, tuple[FeedConnection, asyncio.Task[None]]] = {}
        self.reconcile_wake = asyncio.Event()
        self.backfill_wake = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._backfill_retry_at: dict[tuple[str, str], float] = {}
        self._backfill_delays: dict[tuple[str, str], Any] = {}
        self._backfill_sem = asyncio.Semaphore(settings.ingestion_backfill_concurrency)
        self.dead_letters = 0
        self.clock: ExchangeClock | None = None
        self.bad_subscriptions = 0
        self._reported_bad: set[bytes] = set()
        self._msg_window: tuple[float, int] = (time.monotonic(), 0)
        self.messages_per_s = 0.0

    # --- wiring -------------------------------------------------------------------------
    def _on_write_result(self, symbol: str, interval: str, appended: bool, last: int) -> None:
        if not appended:
            self.feed.on_stored(symbol, interval, last)

    def _dead_letter(self, reason: str, raw: str) -> None:
        self.dead_letters += 1
        self._spawn(
            self._dead_letter_async("ingestion:ws", reason, {"raw": raw}), name="dead-letter"
        )

    async def _dead_letter_async(self, source: str, reason: str, fields: dict[str, str]) -> None:
        try:
            await dead_letter(self.redis, source, "", fields, reason, service="ingestion")
        except REDIS_ERRORS as exc:
            log.warning("dead_letter.failed", reason=reason, error=str(exc))

    def _spawn(self, coro: Any, *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- subscriptions ------------------------------------------------------------------
    async def lease_loop(self) -> None:
        interval = self.settings.ingestion_lease_ttl_s / 3
        held: set[int] = set()
        while True:
            now_held = await self.leases.refresh()
            if now_held != held:
                log.info("shards.changed", held=sorted(now_held))
                held = now_held
                self.reconcile_wake.set()
            await asyncio.sleep(interval)

    async def notification_loop(self) -> None:
        """Wake the reconcile on every ``market:subscriptions:changed`` message."""
        delays = backoff_delays(0.1, 5.0, random.Random())
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.MARKET_SUBSCRIPTIONS_CHANNEL)
                delays = backoff_delays(0.1, 5.0, random.Random())
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.reconcile_wake.set()
            except REDIS_ERRORS as exc:
                log.warning("subscriptions.notify_failed", error=str(exc))
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(next(delays))

    async def reconcile_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.reconcile_wake.wait(), self.settings.ingestion_reconcile_interval_s
                )
            self.reconcile_wake.clear()
            try:
                await self.reconcile()
            except REDIS_ERRORS as exc:
                log.warning("subscriptions.reconcile_failed", error=str(exc))

    async def wanted_pairs(self) -> set[tuple[str, str]]:
        members = await self.redis.smembers(keys.MARKET_SUBSCRIPTIONS)
        held = self.leases.held
        shards = self.settings.ingestion_shards
        wanted: set[tuple[str, str]] = set()
        for raw in members:
            member = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                symbol, interval = keys.parse_subscription(member)
                if not is_interval(interval) or symbol != symbol.upper() or not symbol.isalnum():
                    raise ValueError(f"invalid subscription {member!r}")
            except ValueError as exc:
                self._bad_subscription(raw, str(exc))
                continue
            if shard_of(member, shards) in held:
                wanted.add((symbol, interval))
        return wanted

    def _bad_subscription(self, raw: bytes, reason: str) -> None:
        if raw in self._reported_bad:
            return
        self._reported_bad.add(raw)
        self.bad_subscriptions += 1
        self.dead_letters += 1
        self._spawn(
            self._dead_letter_async(
                keys.MARKET_SUBSCRIPTIONS, reason, {"member": raw.decode("utf-8", "replace")}
            ),
            name="dead-letter",
        )

    async def reconcile(self) -> None:
        wanted = await self.wanted_pairs()
        current = self.feed.streams()
        added = sorted(wanted - current)
        for pair in current - wanted:
            self.feed.remove_stream(*pair)
            log.info("stream.removed", symbol=pair[0], interval=pair[1])
        if added:
            stored = await read_last_open_times(self.redis, added)
            for pair in added:
                self.feed.add_stream(pair[0], pair[1], stored[pair])
                log.info("stream.added", symbol=pair[0], interval=pair[1], last=stored[pair])
        self._place({kline_stream(s, i) for s, i in wanted})
        await self.depth.refresh(wanted)
        self.depth_wake.set()

    def _place(self, streams: set[str]) -> None:
        current = {cid: conn.wanted for cid, (conn, _) in self.connections.items()}
        placement = assign_streams(
            streams, current, self.settings.ingestion_max_streams_per_connection
        )
        for cid in list(self.connections):
            if cid not in placement:
                conn, task = self.connections.pop(cid)
                task.cancel()
                self._spawn(conn.close(), name=f"close-{cid}")
        for cid, wanted in placement.items():
            entry = self.connections.get(cid)
            if entry is None:
                conn = FeedConnection(cid, self.options, self.feed, self._dead_letter)
                conn.want(wanted)
                task = asyncio.create_task(conn.run(), name=f"connection-{cid}")
                self.connections[cid] = (conn, task)
            elif entry[0].wanted != wanted:
                entry[0].want(wanted)

    # --- backfill -----------------------------------------------------------------------
    async def backfill_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if not self.feed.backfill_pending and not self._backfill_retry_at:
                continue
            for sync, request in self.feed.backfills_due():
                pair = (sync.symbol, sync.interval)
                if self._backfill_retry_at.get(pair, 0) > now:
                    sync.on_backfill_failed()  # not yet: back to NEED_BACKFILL
                    continue
                self._spawn(self._backfill(sync, request), name=f"backfill-{pair}")
            self.feed.backfill_pending = (
                any(t <= now for t in self._backfill_retry_at.values())
                or self.feed.backfill_pending
            )

    async def _backfill(self, sync: StreamSync, request: BackfillRequest) -> None:
        pair = (sync.symbol, sync.interval)
        async with self._backfill_sem:
            next_request: BackfillRequest | None = request
            try:
                while next_request is not None:
                    rows = await self.rest.klines(
                        sync.symbol, sync.interval, next_request.start_time, next_request.limit
                    )
                    exchange_now = self.feed.exchange_now
                    candles = rest_klines_to_candles(sync.symbol, sync.interval, rows, exchange_now)
                    log.info(
                        "backfill.page",
                        symbol=sync.symbol,
                        interval=sync.interval,
                        start=next_request.start_time,
                        rows=len(rows),
                    )
                    next_request = self.feed.on_backfill(sync, next_request, candles, exchange_now)
            except (BinanceError, BudgetExhausted) as exc:
                self.feed.on_backfill_failed(sync)
                delays = self._backfill_delays.setdefault(
                    pair, backoff_delays(0.2, 30.0, random.Random())
                )
                delay = next(delays)
                if isinstance(exc, RateLimitedError) and exc.retry_after_s:
                    delay = max(delay, exc.retry_after_s)
                self._backfill_retry_at[pair] = time.monotonic() + delay
                log.warning(
                    "backfill.failed",
                    symbol=sync.symbol,
                    interval=sync.interval,
                    error=str(exc),
                    retry_in=round(delay, 3),
                )
                return
            except ValueError as exc:  # a malformed row (bad decimal)
                self.feed.on_backfill_failed(sync)
                self._backfill_retry_at[pair] = time.monotonic() + 5.0
                self.dead_letters += 1
                await self._dead_letter_async("ingestion:rest", str(exc), {"symbol": sync.symbol})
                return
            self._backfill_retry_at.pop(pair, None)
            if sync.state.value != "live":
                # REST was behind the stream: try again shortly, with backoff.
                delays = self._backfill_delays.setdefault(
                    pair, backoff_delays(0.2, 5.0, random.Random())
                )
                self._backfill_retry_at[pair] = time.monotonic() + next(delays)
            else:
                self._backfill_delays.pop(pair, None)

    # --- warm-up depth --------------------------------------------------------------------
    async def depth_loop(self) -> None:
        """Backfill into the past the series whose bots declare more warm-up than their
        list holds (:mod:`.depth`); woken by each reconcile, one task per series."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.depth_wake.wait(), self.settings.ingestion_reconcile_interval_s
                )
            self.depth_wake.clear()
            now = time.monotonic()
            for pair in list(self.depth.demand):
                if pair in self._deepening or self._backfill_retry_at.get(pair, 0) > now:
                    continue
                self._deepening.add(pair)
                self._spawn(self._deepen(pair), name=f"depth-{pair}")

    async def _deepen(self, pair: tuple[str, str]) -> None:
        try:
            async with self._backfill_sem:
                await self.depth.deepen(pair)
        except (BinanceError, BudgetExhausted, *REDIS_ERRORS) as exc:
            delays = self._backfill_delays.setdefault(
                pair, backoff_delays(0.2, 30.0, random.Random())
            )
            delay = next(delays)
            if isinstance(exc, RateLimitedError) and exc.retry_after_s:
                delay = max(delay, exc.retry_after_s)
            self._backfill_retry_at[pair] = time.monotonic() + delay
            log.warning(
                "depth.failed", symbol=pair[0], interval=pair[1], error=str(exc), retry_in=delay
            )
        except ValueError as exc:  # a malformed row (bad decimal)
            self._backfill_retry_at[pair] = time.monotonic() + 5.0
            self.dead_letters += 1
            await self._dead_letter_async("ingestion:rest", str(exc), {"symbol": pair[0]})
        finally:
            self._deepening.discard(pair)

    # --- exchange clock ------------------------------------------------------------------
    async def clock_loop(self) -> None:
        """Sample the exchange's clock for everyone who measures data ages
        (``market:clock``, :mod:`shared.exchange_clock`)."""
        delays = backoff_delays(1.0, 60.0, random.Random())
        while True:
            try:
                before = now_ms()
                server = await self.rest.server_time()
                after = now_ms()
                self.clock = next_sample(self.clock, server, (before + after) // 2)
                await self.redis.hset(keys.MARKET_CLOCK, mapping=self.clock.to_fields())
                delays = backoff_delays(1.0, 60.0, random.Random())
                await asyncio.sleep(self.settings.ingestion_clock_interval_s)
            except (BinanceError, BudgetExhausted, *REDIS_ERRORS) as exc:
                delay = next(delays)
                log.warning("clock.failed", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    # --- exchangeInfo -------------------------------------------------------------------
    async def exchange_info_loop(self) -> None:
        delays = backoff_delays(1.0, 60.0, random.Random())
        while True:
            try:
                await self.refresh_exchange_info()
                delays = backoff_delays(1.0, 60.0, random.Random())
                await asyncio.sleep(self.settings.ingestion_exchange_info_interval_s)
            except (BinanceError, BudgetExhausted, *REDIS_ERRORS) as exc:
                delay = next(delays)
                log.warning("exchange_info.failed", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def refresh_exchange_info(self) -> None:
        from shared.binance.rules import rules_from_symbol_info

        info = await self.rest.exchange_info()
        self.budget.apply_rules(rules_from_exchange_info(info.rateLimits))
        mapping: dict[str, bytes] = {}
        for entry in info.symbols:
            try:
                mapping[entry.symbol] = rules_to_json(rules_from_symbol_info(entry))
            except ValueError as exc:
                self.dead_letters += 1
                await self._dead_letter_async(
                    "ingestion:exchangeInfo", str(exc), {"symbol": entry.symbol}
                )
        if not mapping:
            return
        existing = await self.redis.hkeys(keys.EXCHANGE_SYMBOLS)
        gone = [s for s in existing if (s.decode() if isinstance(s, bytes) else s) not in mapping]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.EXCHANGE_SYMBOLS, mapping=mapping)
            if gone:
                pipe.hdel(keys.EXCHANGE_SYMBOLS, *gone)
            await pipe.execute()
        log.info("exchange_info.stored", symbols=len(mapping), removed=len(gone))

    # --- health -------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        now = time.monotonic()
        conns = [c for c, _ in self.connections.values()]
        messages = sum(c.stats.messages for c in conns)
        started, count = self._msg_window
        if now - started >= 1.0:
            self.messages_per_s = (messages - count) / (now - started)
            self._msg_window = (now, messages)
        last = max((c.stats.last_message_at for c in conns), default=0.0)
        stale_after = self.options.stale_after_s
        return {
            "shards": sorted(self.leases.held),
            "subscribed_streams": len(self.feed.syncs),
            "connected_streams": sum(c.connected_streams() for c in conns),
            "connections": len(conns),
            "messages": messages,
            "messages_per_s": round(self.messages_per_s, 1),
            "last_message_age_ms": int((now - last) * 1000) if last else -1,
            "reconnects": sum(c.stats.reconnects for c in conns),
            "rollovers": sum(c.stats.rollovers for c in conns),
            "stale_disconnects": sum(c.stats.stale_disconnects for c in conns),
            "candles_written": self.writer.candles_appended,
            "candles_refused": self.writer.candles_refused,
            "ticks_written": self.writer.ticks_written,
            "write_failures": self.writer.failures,
            "dead_letters": self.dead_letters,
            "stale_symbols": self.feed.stale_symbols(stale_after, now),
            "rest_requests": self.rest.requests,
            "kline_requests": self.rest.kline_requests,
            "depth_pages": self.depth.pages,
            "depth_candles": self.depth.prepended,
            "warmup_series": len(self.depth.demand),
            "rest_rate_limited": self.rest.rate_limited,
            "exchange_time": self.feed.exchange_now,
            "ts_local": now_ms(),
            **self.feed.figures(),
        }

    async def close(self) -> None:
        tasks = [t for _, t in self.connections.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn, _ in self.connections.values():
            await conn.close()
        self.connections.clear()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def stream_pairs(streams: set[str]) -> list[tuple[str, str]]:
    out = []
    for name in streams:
        parsed = parse_stream_name(name)
        if parsed and parsed.symbol and parsed.interval:
            out.append((parsed.symbol, parsed.interval))
    return out
