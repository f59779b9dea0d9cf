"""The runner shell: claims bots by lease, reads every stream it needs with one blocking
XREAD, feeds the pure core (:mod:`.core`) and writes its changes (:mod:`.store`).

Loops (all owned by :func:`services.runner.app.main`):

- ``read``: one XREAD over every candle and tick stream of the held bots plus
  ``stream:executions``; executions, then candles (entries), then ticks (exits); urgent
  changes (intents, fills) are committed first, HOLD logs after them.
- ``commands``: XREAD (fan-out) on ``stream:bot-commands``; wakes claims and stops.
- ``reconcile``: desired state is the truth; claims bots that need a runner (lapsed
  lease) up to this runner's fair share, stops held bots whose desired state is
  ``stopped``, re-asserts market subscriptions.
- ``renew``: renews every lease; a bot whose lease is lost is dropped at once.
- ``housekeeping``: the stale-data gate, marks flushed once a second, pending intents
  re-sent (same id) when no final report came, subscriptions withdrawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec

from services.runner import fleet, subscriptions
from services.runner.batch import CommitBatch
from services.runner.core import BotState, Change, Pending, ends, hold_entry, stale_reason
from services.runner.market import Group, Market, Series, decode_candles, replay
from services.runner.settings import RunnerSettings
from services.runner.store import BotLoadError, BotStore, Decided
from services.runner.wire import read_streams
from shared import keys
from shared.bots import BotStatus, Desired
from shared.exchange_clock import ExchangeClock, read_exchange_clock
from shared.logging import get_logger
from shared.messages import (
    BotCommand,
    Candle,
    CommandAction,
    Event,
    ExecutionReport,
    Tick,
)
from shared.redis import REDIS_ERRORS, heartbeats, now_ms
from shared.strategies.base import Signal, SignalAction, TradingStrategy
from shared.streams import EVENTS_MAXLEN, dead_letter, decode_entry, emit_event, publish_nowait

log = get_logger(__name__)

XREAD_COUNT = 200
# A runner whose heartbeat (written every second) is older than this is not counted in
# the fleet's loads, so bots of a dead or paused runner are adopted without waiting
# for its health key to expire.
HEARTBEAT_FRESH_MS = 2500
CLAIM_CHUNK = 500
BACKGROUND_YIELD_S = 0.5
_decoders: dict[bytes, msgspec.json.Decoder[Any]] = {
    b"candle": msgspec.json.Decoder(Candle),
    b"tick": msgspec.json.Decoder(Tick),
    b"execution_report": msgspec.json.Decoder(ExecutionReport),
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


class Runner:
    def __init__(self, redis: Any, settings: RunnerSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.owner = settings.instance
        self.store = BotStore(
            redis,
            self.owner,
            log_maxlen=settings.runner_log_maxlen,
            trades_maxlen=settings.runner_trades_maxlen,
        )
        self.market = Market()
        self.bots: dict[str, BotState] = {}
        self.group_of: dict[str, tuple[Series, Group]] = {}
        self.lock = asyncio.Lock()  # decide + commit of one bot never interleave
        self.dirty: set[str] = set()  # books marked by prices, flushed lazily
        self.unsubscribe: set[tuple[str, str]] = set()
        self.claiming: set[str] = set()
        self.fleet: dict[str, tuple[int, int]] = {}  # live runners: instance -> (bots, capacity)
        self.last_loop_ms = 0
        self.intents_sent = 0
        self.reports_applied = 0
        self.grace_ms = int(settings.runner_stale_grace_s * 1000)
        self._excess_streak = 0
        self.clock: ExchangeClock | None = None  # market:clock, read every second
        self.reads_idle = asyncio.Event()  # clear while a read round decides and writes
        self.reads_idle.set()
        self._strategies: dict[str, TradingStrategy[Any]] = {}  # by config digest
        self._released: list[str] = []  # settled changes: bots let go by their commit
        self._events: list[Event] = []  # settled changes: events for people

    # --- figures --------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        return {
            "bots": len(self.bots),
            "capacity": self.settings.runner_capacity,
            "bot_tasks": len(self.bots),
            "series": len(self.market.series),
            "groups": sum(len(s.groups) for s in self.market.series.values()),
            "streams": len(self.market.last_ids),
            "last_loop_ms": self.last_loop_ms,
            "intents_sent": self.intents_sent,
            "reports_applied": self.reports_applied,
        }

    # --- start ------------------------------------------------------------------------

    async def start(self) -> None:
        """Read executions from here on (adoption scans back from each pending intent)."""
        self.clock = await read_exchange_clock(self.redis)
        last = await self.redis.xrevrange(keys.EXECUTIONS, count=1)
        self.market.last_ids[keys.EXECUTIONS] = _text(last[0][0]) if last else "0-0"

    # --- claims ----------------------------------------------------------------------

    async def claim(self, bot_ids: list[str]) -> int:
        """Claim, load and start ``bot_ids`` (in chunks, so that every lease taken is
        renewed long before it could lapse); returns how many were started."""
        room = self.settings.runner_capacity - len(self.bots) - len(self.claiming)
        ids = [b for b in bot_ids if b not in self.bots and b not in self.claiming][: max(0, room)]
        started = 0
        for i in range(0, len(ids), CLAIM_CHUNK):
            started += await self._claim_chunk(ids[i : i + CLAIM_CHUNK])
        if started:
            # Bots live for the whole run: keep the cyclic GC from rescanning them on
            # the hot path (with 10,000 bots a full collection paused a burst ~70 ms).
            # Only the cyclic collector skips frozen objects; freed ones still go.
            gc.freeze()
        return started

    async def _claim_chunk(self, ids: list[str]) -> int:
        if not ids:
            return 0
        self.claiming.update(ids)
        try:
            epochs = await self.store.claim(ids, self.settings.runner_lease_ms, now_ms())
            won = [(b, e, p) for b, (e, p) in zip(ids, epochs, strict=True) if e > 0]
            if not won:
                return 0
            records = await self.store.load([b for b, _, _ in won])
            ready: list[tuple[BotState, str, str]] = []
            for (bot_id, epoch, previous), record in zip(won, records, strict=True):
                try:
                    state = record.state(bot_id, epoch)
                except BotLoadError as exc:
                    await self._fail(bot_id, epoch, str(exc))
                    continue
                ready.append((state, record.fields.get("desired", ""), previous))
            await self._start_bots(ready)
            return len(ready)
        finally:
            self.claiming.difference_update(ids)

    async def _fail(self, bot_id: str, epoch: int, error: str) -> None:
        now = now_ms()
        state_fields = {
            "status": BotStatus.ERROR.value,
            "status_reason": error,
            "error": error,
            "updated_at": str(now),
        }
        log.error("bot.error", bot=bot_id, error=error)
        await self.redis.hset(keys.bot(bot_id), mapping=state_fields)
        await self.store.release([bot_id])
        await emit_event(
            self.redis,
            Event(
                kind="bot_status",
                level="error",
                message=f"bot {bot_id} error: {error}",
                service="runner",
                bot_id=bot_id,
                ts=now,
                details={"epoch": epoch},
            ),
        )

    async def _warm(
        self, state: BotState, lists: dict[tuple[str, str], list[Candle]]
    ) -> tuple[Series, Group]:
        """The bot's series and group, created and seeded when new (``lists``: candle
        lists already read by this claim, reused while no newer candle came)."""
        cfg = state.config
        key = (cfg.symbol, cfg.interval)
        strategy = self._strategies.get(state.config_digest)
        if strategy is None:
            if len(self._strategies) > 50_000:
                self._strategies.clear()
            strategy = self._strategies[state.config_digest] = cfg.build_strategy()
        series = self.market.series.get(key)
        new_series = series is None
        list_key = keys.candles(cfg.symbol, cfg.interval)
        n = self.settings.runner_warmup_candles
        group = series.groups.get(strategy.key) if series is not None else None
        if new_series or group is None:
            candles = lists.get(key)
            if series is None or not candles or candles[-1].close_time != series.last_close_time:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.lrange(list_key, -n, -1)
                    pipe.xrevrange(keys.candle_stream(cfg.symbol, cfg.interval), count=1)
                    raw, last = await pipe.execute()
                candles = lists[key] = decode_candles(raw)
                if series is None:
                    series = self.market.add_series(cfg.symbol, cfg.interval)
                    self.market.last_ids[series.stream] = _text(last[0][0]) if last else "0-0"
                    if candles:
                        series.last_close_time = candles[-1].close_time
                        series.last_candle = candles[-1]
            # else: a new group on a series whose list this claim has just read
            if group is None:
                group = Group((cfg.symbol, cfg.interval, strategy.key), strategy.evaluator())
                group.seed(candles)
                series.groups[strategy.key] = group
        assert series is not None and group is not None
        if not state.last_open_time:  # a new bot does not act on history
            state.last_open_time = group.evaluator.last_open_time or 0
        tick_stream = keys.tick_stream(cfg.symbol)
        if tick_stream not in self.market.tick_symbols:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xrevrange(tick_stream, count=1)
                pipe.get(keys.price(cfg.symbol))
                pipe.hget(keys.MARKET_LAST_UPDATE, cfg.symbol)
                last_tick, price, updated = await pipe.execute()
            self.market.tick_symbols[tick_stream] = cfg.symbol
            self.market.last_ids[tick_stream] = _text(last_tick[0][0]) if last_tick else "0-0"
            if updated:
                self.market.last_price_at[cfg.symbol] = int(updated)
            if price:
                try:
                    state.book.mark(Decimal(_text(price)))
                except ArithmeticError:
                    pass
        self.market.add_bot(state.bot_id, series, group)
        if new_series:
            await self._subscribe([series])
        return series, group

    async def _start_bots(self, ready: list[tuple[BotState, str, str]]) -> None:
        lists: dict[tuple[str, str], list[Candle]] = {}
        refs = [await self._warm(state, lists) for state, _, _ in ready]
        # A bot left active by its previous owner (not a fresh start) decides the candles
        # that closed while it had none; computed before the lock (reads Redis).
        active = {
            BotStatus.STARTING.value,
            BotStatus.RUNNING.value,
            BotStatus.STOPPING.value,
            BotStatus.NEEDS_ATTENTION.value,
        }
        behind = [
            (state, series, group)
            for (state, desired, _), (series, group) in zip(ready, refs, strict=True)
            if desired == Desired.RUNNING.value and state.status in active
        ]
        missed = await self._missed_candles(behind)
        async with self.lock:
            now = now_ms()
            found = await self._final_reports([state for state, _, _ in ready])
            items: list[tuple[BotState, Change]] = []
            for (state, desired, previous), (series, group) in zip(ready, refs, strict=True):
                self.bots[state.bot_id] = state
                self.group_of[state.bot_id] = (series, group)
                state.stale = self._stale_for(state)
                change = Change(bot={"stale": state.stale, "error": ""})
                change.merge(self._recover(state, found, now))
                if desired != Desired.RUNNING.value:
                    change.merge(state.on_stop(now, self.market.last_ids[keys.EXECUTIONS]))
                else:
                    reason = f"stale data for {state.stale}: no new entries" if state.stale else ""
                    if previous and previous != self.owner and not reason:
                        reason = f"adopted from {previous}"
                    state.status = ""  # force the status write
                    if state.unresolved is not None:
                        why = (
                            f"outcome of intent {state.unresolved.intent_id} unknown (no final "
                            "report within the bound); exits still work, no new entries"
                        )
                        change.merge(state.needs_attention(why, now))
                    else:
                        change.merge(state.set_status(BotStatus.RUNNING, reason, now))
                    change.merge(self._catch_up(state, series, missed.get(state.bot_id), now))
                change.book = True
                items.append((state, change))
                if previous and previous != self.owner:
                    log.info("bot.adopted", bot=state.bot_id, epoch=state.epoch, previous=previous)
            log.info("bots.claimed", count=len(items))
            await self._commit(items)

    async def _missed_candles(
        self, bots: list[tuple[BotState, Series, Group]]
    ) -> dict[str, list[tuple[Candle, Signal]]]:
        """For each bot behind its series' newest closed candle, that series' candles
        after the bot's last decided one with its strategy's signals on them (from
        ``candles:{S}:I``, one read per series, one replay per group and starting point)."""
        late = [
            (st, se, g)
            for st, se, g in bots
            if st.last_open_time
            and se.last_candle is not None
            and se.last_candle.open_time > st.last_open_time
        ]
        if not late:
            return {}
        lists: dict[tuple[str, str], list[Candle]] = {}
        wanted = {(se.symbol, se.interval) for _, se, _ in late}
        n = self.settings.runner_warmup_candles + self.settings.runner_catch_up_candles
        async with self.redis.pipeline(transaction=False) as pipe:
            for symbol, interval in wanted:
                pipe.lrange(keys.candles(symbol, interval), -n, -1)
            raws = await pipe.execute()
        for series_key, raw in zip(wanted, raws, strict=True):
            lists[series_key] = decode_candles(raw)
        replays: dict[tuple[str, str, str, int], list[tuple[Candle, Signal]]] = {}
        out: dict[str, list[tuple[Candle, Signal]]] = {}
        for state, series, group in late:
            key = (series.symbol, series.interval, group.key[2], state.last_open_time)
            done = replays.get(key)
            if done is None:
                candles = lists[(series.symbol, series.interval)]
                evaluator = group.evaluator.strategy.evaluator()
                done = replays[key] = replay(evaluator, candles, state.last_open_time)
            out[state.bot_id] = done
        return out

    def _catch_up(
        self,
        state: BotState,
        series: Series,
        missed: list[tuple[Candle, Signal]] | None,
        now: int,
    ) -> Change:
        """An adopted bot decides the candles that closed while it had no owner, oldest
        first (:meth:`BotState.catch_up`), unless the newest of them is stale."""
        if not missed:
            return Change()
        newest = missed[-1][0]
        age = self.market_now(now) - newest.close_time
        stale = ""
        if age > series.interval_ms + self.grace_ms:
            stale = f"stale (the newest closed {age // 1000}s ago)"
        exec_from = self.market.last_ids[keys.EXECUTIONS]
        change = state.catch_up(
            missed, self.settings.runner_catch_up_candles, stale, now, exec_from
        )
        if not change.empty:
            log.info("bot.catch_up", bot=state.bot_id, candles=len(missed), stale=stale or None)
        return change

    async def _final_reports(self, states: list[BotState]) -> dict[str, ExecutionReport]:
        """The report that ends each pending or unresolved intent of ``states``, where
        one is still in ``stream:executions`` (one scan from the oldest ``exec_from``);
        fenced copies are skipped and the scan goes on (:func:`core.ends`)."""
        slots: dict[str, Pending] = {}
        for state in states:
            for slot in (state.pending, state.unresolved):
                if slot is not None:
                    slots[slot.intent_id] = slot
        if not slots:
            return {}
        start = min((s.exec_from for s in slots.values()), key=_stream_id)
        found: dict[str, ExecutionReport] = {}
        while len(found) < len(slots):
            entries = await self.redis.xrange(keys.EXECUTIONS, min=f"({start}", count=1000)
            if not entries:
                break
            for entry_id, fields in entries:
                start = _text(entry_id)
                report = await decode_entry(
                    self.redis, keys.EXECUTIONS, entry_id, fields, ExecutionReport, service="runner"
                )
                if report is None or report.intent_id in found:
                    continue
                slot = slots.get(report.intent_id)
                if slot is not None and ends(report, slot):
                    found[report.intent_id] = report
        return found

    def _recover(self, state: BotState, found: dict[str, ExecutionReport], now: int) -> Change:
        """An adopted bot's pending (and unresolved) intent: apply the final report that
        ends it if it already came, else send it again under this owner's epoch (same
        id: the gateway places it once, or republishes the report it stored)."""
        change = Change()
        for slot in (state.pending, state.unresolved):
            if slot is not None and slot.intent_id in found:
                change.merge(state.on_report(found[slot.intent_id], now))
        if state.pending is not None:
            # A new wait under this owner (the bound starts now), reports read from here.
            state.pending = Pending(
                state.pending.intent, self.market.last_ids[keys.EXECUTIONS], now
            )
        if state.pending is not None or state.unresolved is not None:
            change.merge(state.resend(now, now))
        return change

    # --- dropping -------------------------------------------------------------------

    def _forget(self, bot_id: str) -> None:
        state = self.bots.pop(bot_id, None)
        ref = self.group_of.pop(bot_id, None)
        self.dirty.discard(bot_id)
        if state is None or ref is None:
            return
        series, group = ref
        gone = self.market.remove_bot(bot_id, series.symbol, series.interval, group.key[2])
        if gone is not None:
            self.unsubscribe.add((gone.symbol, gone.interval))

    def _batch(self) -> CommitBatch:
        return CommitBatch(self.store, self._settle)

    async def _commit(self, items: list[tuple[BotState, Change]]) -> None:
        """Write changes; a lost lease drops the bot at once; released bots let go."""
        batch = self._batch()
        try:
            for state, change in items:
                await batch.add(state, change)
        finally:
            await batch.drain()
        await self._after_commit()

    def _settle(self, items: list[tuple[BotState, Change]], results: list[bool]) -> None:
        """What the answer of one commit means: a bot whose lease or epoch was lost is
        dropped at once (it wrote and emitted nothing); the rest is done."""
        now = now_ms()
        for (state, change), ok in zip(items, results, strict=True):
            if not ok:
                log.warning("bot.lease_lost", bot=state.bot_id, epoch=state.epoch)
                self._forget(state.bot_id)
                continue
            if change.intent is not None:
                self.intents_sent += 1
            self.intents_sent += len(change.resent)
            for kind, level, message in change.events:
                self._events.append(
                    Event(
                        kind=kind,
                        level=level,
                        message=message,
                        service="runner",
                        bot_id=state.bot_id,
                        symbol=state.config.symbol,
                        ts=now,
                    )
                )
            if change.release:  # the commit let go of the lease
                self._forget(state.bot_id)
                self._released.append(state.bot_id)

    async def _after_commit(self) -> None:
        """Publish the events of settled changes."""
        self.store.forget(self._released)
        self._released = []
        events, self._events = self._events, []
        if events:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    publish_nowait(pipe, keys.EVENTS, event, maxlen=EVENTS_MAXLEN)
                await pipe.execute()

    async def _decided(self, holds: list[Decided]) -> None:
        """Write the group-wide HOLD decisions (last decided candle, one log entry each)."""
        groups = [
            (t, entry, [st for st in states if self.bots.get(st.bot_id) is st])
            for t, entry, states in holds
        ]
        groups = [g for g in groups if g[2]]
        if not groups:
            return
        results = await self.store.decided(groups)
        states = [st for _, _, group in groups for st in group]
        for state, ok in zip(states, results, strict=True):
            if not ok:
                log.warning("bot.lease_lost", bot=state.bot_id, epoch=state.epoch)
                self._forget(state.bot_id)

    # --- subscriptions -----------------------------------------------------------------

    async def _subscribe(self, series: list[Series]) -> None:
        await subscriptions.add(self.redis, [(x.symbol, x.interval) for x in series])

    async def _withdraw_subscriptions(self) -> None:
        """Remove subscriptions no bot needs any more (see :mod:`.subscriptions`)."""
        wanted = {k for k in self.unsubscribe if k not in self.market.series}
        self.unsubscribe.clear()
        await subscriptions.withdraw(self.redis, wanted)

    # --- the read loop ---------------------------------------------------------------

    async def read_once(self) -> int:
        """One XREAD round; returns how many entries it handled."""
        streams = dict(self.market.last_ids)
        reply = await read_streams(
            self.store.lanes, streams, XREAD_COUNT, self.settings.runner_block_ms
        )
        self.last_loop_ms = now_ms()
        if not reply:
            return 0
        reports: list[ExecutionReport] = []
        waves: list[list[tuple[Series, Candle]]] = []
        ticks: list[Tick] = []
        handled = 0
        for stream, entries in reply:
            if not entries:
                continue
            if stream in self.market.last_ids:
                self.market.last_ids[stream] = _text(entries[-1][0])
            series = self.market.by_stream.get(stream)
            nth = 0
            for entry_id, fields in entries:
                handled += 1
                message = await self._decode(stream, entry_id, fields)
                if message is None:
                    continue
                if isinstance(message, ExecutionReport):
                    if message.bot_id in self.bots:
                        reports.append(message)
                elif isinstance(message, Candle):
                    if series is not None and message.closed:
                        # The n-th candle of each series goes to wave n, so a bot
                        # decides at most once per wave and its writes stay in order.
                        if nth == len(waves):
                            waves.append([])
                        waves[nth].append((series, message))
                        nth += 1
                elif isinstance(message, Tick):
                    ticks.append(message)
        self.reads_idle.clear()
        try:
            async with self.lock:
                if not waves:
                    await self._process(reports, [], ticks)
                for i, wave in enumerate(waves):
                    last = i == len(waves) - 1
                    await self._process(reports if i == 0 else [], wave, ticks if last else [])
        finally:
            self.reads_idle.set()
        return handled

    async def _decode(self, stream: str, entry_id: Any, fields: dict[Any, Any]) -> Any:
        decoder = _decoders.get(fields.get(b"type", b""))
        data = fields.get(b"data")
        if decoder is not None and data is not None:
            try:
                return decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await dead_letter(self.redis, stream, entry_id, fields, str(exc), service="runner")
                return None
        await dead_letter(
            self.redis, stream, entry_id, fields, "unexpected entry", service="runner"
        )
        return None

    async def _process(
        self,
        reports: list[ExecutionReport],
        candles: list[tuple[Series, Candle]],
        ticks: list[Tick],
    ) -> None:
        """Decide on one wave (reports, at most one candle per series, ticks). Urgent
        changes (intents, fills) leave in chunks while deciding goes on; then the lazy
        ones: skip logs, and each group's HOLD written once for all its bots."""
        now = now_ms()
        exec_from = self.market.last_ids[keys.EXECUTIONS]
        urgent = self._batch()
        lazy: dict[str, tuple[BotState, Change]] = {}
        holds: list[Decided] = []
        log_holds = self.settings.runner_log_holds
        try:
            for report in reports:
                state = self.bots.get(report.bot_id)
                if state is None:
                    continue
                change = state.on_report(report, now)
                if change.book:
                    self.reports_applied += 1
                if state.stopping and state.pending is None:
                    change.merge(state.on_stop(now, exec_from))
                await urgent.add(state, change)
            for series, candle in candles:
                if series.last_close_time is None or candle.close_time > series.last_close_time:
                    series.last_close_time = candle.close_time
                    series.last_candle = candle
                for group in list(series.groups.values()):
                    signal = group.on_candle(candle)
                    if signal is None:
                        continue
                    hold = signal.action is SignalAction.HOLD
                    decided: list[BotState] = []
                    for bot_id in list(group.bots):
                        state = self.bots.get(bot_id)
                        if state is None:
                            continue
                        if state.stale:
                            fresh = state.set_stale(self._stale_for(state, now), now)
                            await urgent.add(state, fresh)
                        if hold:
                            if state.on_hold(candle):
                                decided.append(state)
                            continue
                        change = state.on_signal(
                            candle, signal, now, exec_from, log_holds=log_holds
                        )
                        if change.intent is not None:
                            await urgent.add(state, change)
                        elif not change.empty:
                            lazy[bot_id] = (state, change)
                    if decided:
                        entry = hold_entry(now, signal, candle.close) if log_holds else None
                        holds.append((candle.open_time, entry, decided))
            for tick in ticks:
                self.market.last_price_at[tick.symbol] = max(
                    tick.event_time, self.market.last_price_at.get(tick.symbol, 0)
                )
                for bot_id in list(self.market.symbol_bots.get(tick.symbol, ())):
                    state = self.bots.get(bot_id)
                    if state is None:
                        continue
                    change = state.on_price(tick.price, tick.event_time, now, exec_from)
                    if change.intent is not None:
                        await urgent.add(state, change)
                    elif change.book:
                        self.dirty.add(bot_id)
        finally:
            await urgent.drain()
        await self._after_commit()
        if lazy:
            await self._commit(
                [(st, c) for st, c in lazy.values() if self.bots.get(st.bot_id) is st]
            )
        if holds:
            await self._decided(holds)

    async def read_loop(self) -> None:
        delay = 0.05
        while True:
            try:
                await self.read_once()
                delay = 0.05
            except REDIS_ERRORS as exc:
                log.warning("read.redis_error", error=str(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)

    # --- stale gate, marks, resends ----------------------------------------------------

    def _stale_for(self, state: BotState, now: int | None = None) -> str:
        ref = self.group_of.get(state.bot_id)
        if ref is None:
            return ""
        return self._series_stale(ref[0], now)

    def market_now(self, now: int) -> int:
        """The exchange's time at local time ``now``: data ages are measured on the
        clock that stamped the data (``market:clock``, sampled by ingestion; a sped-up
        simulator runs ahead of the wall clock). The local clock when none is known."""
        return self.clock.now(now) if self.clock is not None else now

    def _series_stale(self, series: Series, now: int | None = None) -> str:
        return stale_reason(
            series.symbol,
            series.interval_ms,
            series.last_close_time,
            self.market.last_price_at.get(series.symbol),
            self.market_now(now if now is not None else now_ms()),
            self.grace_ms,
        )

    async def housekeeping_once(self) -> None:
        self.clock = await read_exchange_clock(self.redis)
        symbols = sorted(self.market.symbol_bots)
        if symbols:
            updated = await self.redis.hmget(keys.MARKET_LAST_UPDATE, symbols)
            for symbol, value in zip(symbols, updated, strict=True):
                if value:
                    ts = int(value)
                    if ts > self.market.last_price_at.get(symbol, 0):
                        self.market.last_price_at[symbol] = ts
        now = now_ms()
        resend_ms = int(self.settings.runner_pending_resend_s * 1000)
        async with self.lock:
            changes: dict[str, tuple[BotState, Change]] = {}
            # The stale gate, per series: only the bots of a series whose verdict changed
            # (or that gained bots) are looked at.
            for series in self.market.series.values():
                stale = self._series_stale(series, now)
                if stale == series.stale:
                    continue
                series.stale = stale
                for group in series.groups.values():
                    for bot_id in group.bots:
                        state = self.bots.get(bot_id)
                        if state is not None:
                            change = state.set_stale(stale, now)
                            if not change.empty:
                                changes[bot_id] = (state, change)
            for bot_id in self.dirty:
                state = self.bots.get(bot_id)
                if state is not None:
                    changes.setdefault(bot_id, (state, Change()))[1].book = True
            self.dirty.clear()
            bound_ms = int(self.settings.runner_pending_timeout_s * 1000)
            exec_from = self.market.last_ids[keys.EXECUTIONS]
            for bot_id, state in self.bots.items():
                if state.pending is None and state.unresolved is None:
                    continue
                # The bounded wait, then re-sends of what has no final report yet.
                change = state.check_pending(now, bound_ms, exec_from)
                change.merge(state.resend(now, now - resend_ms))
                if not change.empty:
                    changes.setdefault(bot_id, (state, Change()))[1].merge(change)
            await self._commit(list(changes.values()))
        await self._withdraw_subscriptions()

    async def housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.housekeeping_once()
            except REDIS_ERRORS as exc:
                log.warning("housekeeping.redis_error", error=str(exc))

    def _pauser(self, budget_s: float = BACKGROUND_YIELD_S) -> Callable[[], Awaitable[None]]:
        """For a background pass over every bot (renew, reconcile): before each chunk,
        wait while a round of decisions is being made and written, so a burst's
        intents do not queue behind it; at most ``budget_s`` in all, so a pass is never
        late by more than that (leases are renewed with two thirds of the lease spare)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_s

        async def pause() -> None:
            left = deadline - loop.time()
            if left > 0 and not self.reads_idle.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.reads_idle.wait(), left)

        return pause

    # --- leases ------------------------------------------------------------------------

    async def renew_once(self) -> None:
        held = [(b, s.epoch) for b, s in self.bots.items()]
        if not held:
            return
        results = await self.store.renew(held, self.settings.runner_lease_ms, self._pauser())
        lost = [b for (b, _), ok in zip(held, results, strict=True) if not ok]
        if lost:
            async with self.lock:
                for bot_id in lost:
                    log.warning("bot.lease_lost", bot=bot_id)
                    self._forget(bot_id)

    async def renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.renew_interval_s)
            try:
                await self.renew_once()
            except REDIS_ERRORS as exc:
                log.warning("renew.redis_error", error=str(exc))

    # --- desired state -------------------------------------------------------------------

    async def _read_fleet(self) -> None:
        fleet: dict[str, tuple[int, int]] = {}
        now = now_ms()
        for beat in await heartbeats(self.redis, "runner"):
            try:
                if now - int(beat.get("ts") or 0) > HEARTBEAT_FRESH_MS:
                    continue  # paused or dead: its key has not expired yet, but it is gone
                fleet[beat["instance"]] = (
                    int(beat.get("bots") or 0),
                    int(beat.get("capacity") or 0),
                )
            except ValueError:
                continue
        fleet[self.owner] = (len(self.bots), self.settings.runner_capacity)
        self.fleet = fleet

    def fair_share(self, candidates: int) -> int:
        """How many of ``candidates`` unowned bots this runner should claim now."""
        mine = len(self.bots) + len(self.claiming)
        return fleet.fair_share(
            self.fleet, self.owner, mine, self.settings.runner_capacity, candidates
        )

    def excess(self) -> int:
        """How many bots to hand over so that the fleet's loads even out."""
        return fleet.excess(self.fleet, self.owner, len(self.bots))

    async def rebalance(self) -> None:
        """Hand over bots above the fleet average (released leases are adopted with their
        books by runners below it)."""
        count = self.excess()
        self._excess_streak = self._excess_streak + 1 if count > 0 else 0
        if self._excess_streak < 3:  # heartbeats lag: act on a lasting imbalance only
            return
        async with self.lock:
            idle = [b for b, st in self.bots.items() if st.pending is None and not st.stopping]
            random.shuffle(idle)
            chosen = idle[:count]
            self._excess_streak = 0
            for bot_id in chosen:
                self._forget(bot_id)
        if chosen:
            await self.store.release(chosen)
            self.fleet[self.owner] = (len(self.bots), self.settings.runner_capacity)
            log.info("bots.rebalanced", handed_over=len(chosen), held=len(self.bots))

    async def reconcile_once(self) -> None:
        await self._read_fleet()
        ids = [_text(b) for b in await self.redis.zrange(keys.BOTS, 0, -1)]
        held = {b: st.config_digest for b, st in self.bots.items()}
        found = await self.store.reconcile(ids, held, self._pauser())
        candidates = [b for b, code in found if code == "claim" and b not in self.bots]
        to_stop = [
            b
            for b, code in found
            if code == "stop" and b in self.bots and not self.bots[b].stopping
        ]
        changed = [
            b
            for b, code in found
            if code == "config" and b in self.bots and not self.bots[b].stopping
        ]
        to_stop.extend(set(self.bots) - set(ids))
        if to_stop:
            await self.stop_bots(to_stop)
        for bot_id in changed:
            # The stored config is not the one this bot runs with (an update whose
            # command was lost): take it up as the command would have.
            log.info("bot.config_changed", bot=bot_id)
            await self.update_bot(bot_id)
        share = self.fair_share(len(candidates))
        if share:
            random.shuffle(candidates)
            jitter = self.settings.runner_claim_jitter_ms / 1000
            await asyncio.sleep(random.uniform(0, jitter))
            await self.claim(candidates[:share])
        await self._subscribe(list(self.market.series.values()))
        if not candidates:
            await self.rebalance()

    async def reconcile_loop(self) -> None:
        # One heartbeat interval first, so runners started together see each other.
        await asyncio.sleep(1.0 + random.uniform(0, self.settings.runner_claim_jitter_ms / 1000))
        while True:
            try:
                await self.reconcile_once()
            except REDIS_ERRORS as exc:
                log.warning("reconcile.redis_error", error=str(exc))
            await asyncio.sleep(self.settings.runner_reconcile_interval_s)

    async def stop_bots(self, bot_ids: list[str]) -> None:
        async with self.lock:
            now = now_ms()
            exec_from = self.market.last_ids[keys.EXECUTIONS]
            items = [
                (self.bots[b], self.bots[b].on_stop(now, exec_from))
                for b in bot_ids
                if b in self.bots
            ]
            await self._commit(items)

    async def update_bot(self, bot_id: str) -> None:
        """A config change: let go of the bot and claim it again with the new config."""
        if bot_id not in self.bots:
            return
        async with self.lock:
            state = self.bots.get(bot_id)
            if state is None:
                return
            self._forget(bot_id)
        await self.store.release([bot_id])
        await self.claim([bot_id])

    # --- commands -----------------------------------------------------------------------

    async def command_loop(self) -> None:
        last = await self.redis.xrevrange(keys.BOT_COMMANDS, count=1)
        last_id = _text(last[0][0]) if last else "0-0"
        count = self.settings.runner_command_batch
        while True:
            try:
                reply = await self.redis.xread(
                    {keys.BOT_COMMANDS: last_id}, count=count, block=1000
                )
            except REDIS_ERRORS as exc:
                log.warning("commands.redis_error", error=str(exc))
                await asyncio.sleep(0.5 * random.uniform(0.5, 1.0))
                continue
            commands: list[BotCommand] = []
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = _text(entry_id)
                    command = await decode_entry(
                        self.redis,
                        keys.BOT_COMMANDS,
                        entry_id,
                        fields,
                        BotCommand,
                        service="runner",
                    )
                    if command is not None:
                        commands.append(command)
            if commands:
                try:
                    await self.handle_commands(commands)
                except REDIS_ERRORS as exc:
                    log.warning("command.redis_error", error=str(exc))

    async def handle_command(self, command: BotCommand) -> None:
        await self.handle_commands([command])

    async def handle_commands(self, commands: list[BotCommand]) -> None:
        """One read's commands together: the last command of each bot wins (desired
        state is the truth; the commands only wake runners), stops in one pass, starts
        claimed in chunks after one jitter, never a sleep per command."""
        last: dict[str, CommandAction] = {}
        for command in commands:
            last.pop(command.bot_id, None)  # keep the order of the latest commands
            last[command.bot_id] = command.action
        stops = [b for b, a in last.items() if a in (CommandAction.STOP, CommandAction.DELETE)]
        updates = [b for b, a in last.items() if a is CommandAction.UPDATE]
        starts = [b for b, a in last.items() if a is CommandAction.START and b not in self.bots]
        log.info("commands", starts=len(starts), stops=len(stops), updates=len(updates))
        if stops:
            await self.stop_bots(stops)
        for bot_id in updates:
            await self.update_bot(bot_id)
        if not starts:
            return
        # The least loaded runner tries first; the lease decides who wins.
        mine = len(self.bots)
        rank = sum(1 for i, (b, _) in self.fleet.items() if i != self.owner and b < mine)
        jitter = self.settings.runner_claim_jitter_ms / 1000
        await asyncio.sleep(jitter * rank + random.uniform(0, jitter))
        share = len(starts) if len(self.fleet) <= 1 else self.fair_share(len(starts))
        # Up to its share, going past bots another runner took first (the rest are
        # claimed by the reconcile passes of whoever has room).
        started, i = 0, 0
        while started < share and i < len(starts):
            part = starts[i : i + min(CLAIM_CHUNK, share - started)]
            i += len(part)
            started += await self.claim(part)

    async def shutdown(self) -> None:
        """Let go of every lease (positions stay; another runner adopts at once)."""
        async with self.lock:
            ids = list(self.bots)
            for bot_id in ids:
                self._forget(bot_id)
        if ids:
            try:
                await self.store.release(ids)
            except REDIS_ERRORS as exc:
                log.warning("shutdown.release_failed", error=str(exc))
        await self.store.close()
