"""Taking bots on and letting them go: claim (lease and epoch, in chunks), load, warm
(series, shared strategy group, tick stream, subscription) and start them, settling an
adopted bot first (:mod:`.adoption`); stop them (close-on-stop, the bounded wait of
:meth:`.core.BotState.on_stop`); take up a changed config (let go, claim again); mark a
bot that cannot run as ``error``.
"""

from __future__ import annotations

import gc
from decimal import Decimal
from typing import Any

from services.runner import adoption, subscriptions
from services.runner.core import BotState, Change
from services.runner.holdings import Holdings, text
from services.runner.market import Group, Series, decode_candles
from services.runner.stale import StaleGate
from services.runner.store import BotLoadError
from shared import keys
from shared.bots import BotStatus, Desired
from shared.logging import get_logger
from shared.messages import Candle, Event
from shared.redis import now_ms
from shared.strategies.base import TradingStrategy
from shared.streams import emit_event

log = get_logger(__name__)

CLAIM_CHUNK = 500
# Statuses a bot is left in by an owner that was running it (not a fresh start): such a
# bot decides the candles that closed while it had no owner.
ACTIVE = frozenset(
    {
        BotStatus.STARTING.value,
        BotStatus.RUNNING.value,
        BotStatus.STOPPING.value,
        BotStatus.NEEDS_ATTENTION.value,
    }
)


class Lifecycle:
    def __init__(self, held: Holdings, gate: StaleGate) -> None:
        self.held = held
        self.gate = gate
        self._strategies: dict[str, TradingStrategy[Any]] = {}  # by config digest

    # --- claims ----------------------------------------------------------------------

    async def claim(self, bot_ids: list[str]) -> int:
        """Claim, load and start ``bot_ids`` (in chunks, so that every lease taken is
        renewed long before it could lapse); returns how many were started."""
        held = self.held
        room = held.settings.runner_capacity - len(held.bots) - len(held.claiming)
        ids = [b for b in bot_ids if b not in held.bots and b not in held.claiming]
        ids = ids[: max(0, room)]
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
        held = self.held
        held.claiming.update(ids)
        try:
            epochs = await held.store.claim(ids, held.settings.runner_lease_ms, now_ms())
            won = [(b, e, p) for b, (e, p) in zip(ids, epochs, strict=True) if e > 0]
            if not won:
                return 0
            records = await held.store.load([b for b, _, _ in won])
            ready: list[tuple[BotState, str, str]] = []
            for (bot_id, epoch, previous), record in zip(won, records, strict=True):
                try:
                    state = record.state(bot_id, epoch)
                except BotLoadError as exc:
                    await self._fail(bot_id, epoch, str(exc))
                    continue
                ready.append((state, record.fields.get("desired", ""), previous))
            ready = await self._deep_enough(ready)
            await self._start(ready)
            return len(ready)
        finally:
            held.claiming.difference_update(ids)

    async def _fail(self, bot_id: str, epoch: int, error: str) -> None:
        now = now_ms()
        state_fields = {
            "status": BotStatus.ERROR.value,
            "status_reason": error,
            "error": error,
            "updated_at": str(now),
        }
        log.error("bot.error", bot=bot_id, error=error)
        await self.held.redis.hset(keys.bot(bot_id), mapping=state_fields)
        await self.held.store.release([bot_id])
        await emit_event(
            self.held.redis,
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

    def _strategy(self, state: BotState) -> TradingStrategy[Any]:
        strategy = self._strategies.get(state.config_digest)
        if strategy is None:
            if len(self._strategies) > 50_000:
                self._strategies.clear()
            strategy = self._strategies[state.config_digest] = state.config.build_strategy()
        return strategy

    def _series(self, state: BotState) -> dict[tuple[str, str], int]:
        """Every series the bot reads, with the closed candles of warm-up it needs there."""
        strategy = self._strategy(state)
        symbol = state.config.symbol
        out: dict[tuple[str, str], int] = {(symbol, state.config.interval): strategy.warmup_candles}
        out.update({(symbol, i): n for i, n in strategy.informative.items()})
        return out

    async def _deep_enough(
        self, ready: list[tuple[BotState, str, str]]
    ) -> list[tuple[BotState, str, str]]:
        """The claimed bots whose series' list holds their declared warm-up (or all the
        exchange has). The warm-up of each is recorded first (``market:warmup``: ingestion
        backfills that deep); a bot to run whose list is still shorter is not started on
        a short seed: it is let go with status ``starting`` and the reason, and claimed
        again by a later reconcile pass."""
        need: dict[tuple[str, str], int] = {}
        for state, desired, _ in ready:
            if desired == Desired.RUNNING.value:
                for pair, n in self._series(state).items():
                    need[pair] = max(need.get(pair, 0), n)
        if not need:
            return ready
        redis = self.held.redis
        pairs = sorted(need)
        await subscriptions.add(redis, pairs, need)
        have = await subscriptions.depth(redis, pairs)
        go: list[tuple[BotState, str, str]] = []
        wait: list[tuple[BotState, str]] = []
        for item in ready:
            state, desired, _ = item
            short = [
                f"{held} of {warmup} closed candles of {symbol} {interval}"
                for (symbol, interval), warmup in self._series(state).items()
                if (held := have.get((symbol, interval))) is not None and held < warmup
            ]
            if desired != Desired.RUNNING.value or not short:
                go.append(item)
                continue
            wait.append(
                (state, f"waiting for warm-up: {', '.join(short)} (ingestion is backfilling)")
            )
        if wait:
            now = now_ms()
            async with redis.pipeline(transaction=False) as pipe:
                for state, reason in wait:
                    pipe.hset(
                        keys.bot(state.bot_id),
                        mapping={
                            "status": BotStatus.STARTING.value,
                            "status_reason": reason,
                            "updated_at": str(now),
                        },
                    )
                await pipe.execute()
            await self.held.store.release([state.bot_id for state, _ in wait])
            log.info("bots.waiting_warmup", count=len(wait), first=wait[0][1])
        return go

    async def _warm(
        self, state: BotState, lists: dict[tuple[str, str], tuple[int, list[Candle]]]
    ) -> tuple[Series, Group]:
        """The bot's series and group, created and seeded when new (``lists``: candle
        lists already read by this claim and how deep, reused while no newer candle
        came)."""
        held, market = self.held, self.held.market
        cfg = state.config
        key = (cfg.symbol, cfg.interval)
        strategy = self._strategy(state)
        series = market.series.get(key)
        group = series.groups.get(strategy.key) if series is not None else None
        new_series = False
        subscribe: list[Series] = []
        if group is None:
            asked, candles = lists.get(key, (0, []))
            # Each group is seeded with at least its own declared warm-up (a list read
            # this deep or deeper is reused; one shorter than asked is all there is).
            n = max(held.settings.runner_warmup_candles, strategy.warmup_candles)
            if (
                series is None
                or not candles
                or candles[-1].close_time != series.last_close_time
                or asked < n
            ):
                async with held.redis.pipeline(transaction=True) as pipe:
                    pipe.lrange(keys.candles(cfg.symbol, cfg.interval), -n, -1)
                    pipe.xrevrange(keys.candle_stream(cfg.symbol, cfg.interval), count=1)
                    raw, last = await pipe.execute()
                candles = decode_candles(raw)
                lists[key] = (n, candles)
                # Another claim (commands, reconcile) may have created the series or
                # the group while this one waited: take theirs, never a second one
                # (bots of a replaced group would never see a candle again).
                series = market.series.get(key)
                if series is None:
                    new_series = True
                    series = market.add_series(cfg.symbol, cfg.interval)
                    market.last_ids[series.stream] = text(last[0][0]) if last else "0-0"
                    if candles:
                        series.last_close_time = candles[-1].close_time
                        series.last_candle = candles[-1]
            # else: a new group on a series whose list this claim has just read
            informative, read_from = await self._read_informative(cfg.symbol, strategy)
            group = series.groups.get(strategy.key)
            if group is None:
                group = Group(
                    (cfg.symbol, cfg.interval, strategy.key),
                    strategy.evaluator(),
                    informative=tuple(informative),
                )
                group.seed(candles, informative)
                series.groups[strategy.key] = group
                for interval, rows in informative.items():
                    # The group reads this series too: its candles go to the evaluator.
                    read, new = market.inform(group, cfg.symbol, interval)
                    if new:
                        market.last_ids[read.stream] = read_from[interval]
                        if rows:
                            read.last_close_time = rows[-1].close_time
                            read.last_candle = rows[-1]
                        subscribe.append(read)
                if len(candles) < strategy.warmup_candles:
                    # A series younger than the warm-up (it starts at the exchange's
                    # first candle, which an uninterrupted run saw too), or a list kept
                    # shorter by hand (docs/strategies.md, "Warm-up").
                    log.warning(
                        "group.short_warmup",
                        symbol=cfg.symbol,
                        interval=cfg.interval,
                        strategy=strategy.name,
                        candles=len(candles),
                        warmup=strategy.warmup_candles,
                    )
        assert series is not None
        if not state.last_open_time:  # a new bot does not act on history
            state.last_open_time = group.evaluator.last_open_time or 0
        tick_stream = keys.tick_stream(cfg.symbol)
        if tick_stream not in market.tick_symbols:
            async with held.redis.pipeline(transaction=False) as pipe:
                pipe.xrevrange(tick_stream, count=1)
                pipe.get(keys.price(cfg.symbol))
                pipe.hget(keys.MARKET_LAST_UPDATE, cfg.symbol)
                last_tick, price, updated = await pipe.execute()
            if tick_stream not in market.tick_symbols:  # not meanwhile by another claim
                market.tick_symbols[tick_stream] = cfg.symbol
                market.last_ids[tick_stream] = text(last_tick[0][0]) if last_tick else "0-0"
            if updated:
                ts = int(updated)
                market.last_price_at[cfg.symbol] = max(ts, market.last_price_at.get(cfg.symbol, 0))
            if price:
                try:
                    state.book.mark(Decimal(text(price)))
                except ArithmeticError:
                    pass
        market.add_bot(state.bot_id, series, group)
        if new_series:
            subscribe.append(series)
        if subscribe:
            await held.subscribe(subscribe)
        return series, group

    async def _read_informative(
        self, symbol: str, strategy: TradingStrategy[Any]
    ) -> tuple[dict[str, list[Candle]], dict[str, str]]:
        """The candle lists of the series ``strategy`` declares besides its own (each its
        declared warm-up deep), and the stream id each was read at."""
        intervals = sorted(strategy.informative)
        if not intervals:
            return {}, {}
        async with self.held.redis.pipeline(transaction=True) as pipe:
            for interval in intervals:
                n = strategy.informative[interval]
                pipe.lrange(keys.candles(symbol, interval), -n, -1)
                pipe.xrevrange(keys.candle_stream(symbol, interval), count=1)
            rows = await pipe.execute()
        lists: dict[str, list[Candle]] = {}
        read_from: dict[str, str] = {}
        for i, interval in enumerate(intervals):
            lists[interval] = decode_candles(rows[2 * i])
            last = rows[2 * i + 1]
            read_from[interval] = text(last[0][0]) if last else "0-0"
        return lists, read_from

    async def _start(self, ready: list[tuple[BotState, str, str]]) -> None:
        """Start claimed bots: warmed, an adopted bot's intents settled and its missed
        candles decided, then status, books and any intent in one commit per chunk."""
        held, gate = self.held, self.gate
        settings = held.settings
        lists: dict[tuple[str, str], tuple[int, list[Candle]]] = {}
        refs = [await self._warm(state, lists) for state, _, _ in ready]
        behind = [
            (state, series, group)
            for (state, desired, _), (series, group) in zip(ready, refs, strict=True)
            if desired == Desired.RUNNING.value and state.status in ACTIVE
        ]
        async with held.lock:
            # Under the lock: a candle the read loop met meanwhile (while these bots were
            # not held yet, so not decided for them) is in the list and decided here.
            missed = await adoption.missed_candles(held, behind)
            now = now_ms()
            found = await adoption.final_reports(held, [state for state, _, _ in ready])
            items: list[tuple[BotState, Change]] = []
            for (state, desired, previous), (series, group) in zip(ready, refs, strict=True):
                held.hold(state, series, group)
                state.stale = gate.stale_for(state)
                change = Change(bot={"stale": state.stale, "error": ""})
                change.merge(adoption.recover(state, found, held.exec_from, now))
                if desired != Desired.RUNNING.value:
                    change.merge(state.on_stop(now, held.exec_from))
                else:
                    reason = f"stale data for {state.stale}: no new entries" if state.stale else ""
                    if previous and previous != held.owner and not reason:
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
                    change.merge(
                        adoption.catch_up(
                            state,
                            series,
                            missed.get(state.bot_id),
                            market_now=gate.market_now(now),
                            grace_ms=gate.grace_ms,
                            limit=settings.runner_catch_up_candles,
                            exec_from=held.exec_from,
                            now=now,
                        )
                    )
                change.book = True
                items.append((state, change))
                if previous and previous != held.owner:
                    log.info("bot.adopted", bot=state.bot_id, epoch=state.epoch, previous=previous)
            log.info("bots.claimed", count=len(items))
            await held.commit(items)

    # --- stops and config changes ------------------------------------------------------

    async def stop(self, bot_ids: list[str]) -> None:
        held = self.held
        async with held.lock:
            now = now_ms()
            items = [
                (held.bots[b], held.bots[b].on_stop(now, held.exec_from))
                for b in bot_ids
                if b in held.bots
            ]
            await held.commit(items)

    async def update(self, bot_id: str) -> None:
        """A config change: let go of the bot and claim it again with the new config."""
        held = self.held
        if bot_id not in held.bots:
            return
        async with held.lock:
            if held.bots.get(bot_id) is None:
                return
            held.forget(bot_id)
        await held.store.release([bot_id])
        await self.claim([bot_id])
