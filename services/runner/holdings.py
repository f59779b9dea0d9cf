"""What one runner holds and how its changes reach Redis: the bots it owns (their
:class:`~.core.BotState` and market group), the lock under which a bot decides and
commits, and the one way changes are written (fenced COMMIT chunks, :mod:`.batch`),
settled (a lost lease drops the bot at once, a released one is forgotten) and told
(events on ``stream:events``). Subscriptions follow the series held.

Every other runner module (:mod:`.lifecycle`, :mod:`.reader`, :mod:`.housekeeping`,
:mod:`.leases`, :mod:`.commands`) works on one :class:`Holdings`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from services.runner import subscriptions
from services.runner.batch import CommitBatch
from services.runner.core import BotState, Change
from services.runner.market import Group, Market, Series
from services.runner.settings import RunnerSettings
from services.runner.store import BotStore, Decided
from shared import keys
from shared.logging import get_logger
from shared.messages import Event
from shared.redis import now_ms
from shared.streams import EVENTS_MAXLEN, publish_nowait

log = get_logger(__name__)

BACKGROUND_YIELD_S = 0.5


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Holdings:
    """The bots this runner owns and the writer of their changes."""

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
        self.last_loop_ms = 0
        self.intents_sent = 0
        self.reports_applied = 0
        self.reads_idle = asyncio.Event()  # clear while a read round decides and writes
        self.reads_idle.set()
        self._released: list[str] = []  # settled changes: bots let go by their commit
        self._events: list[Event] = []  # settled changes: events for people

    @property
    def exec_from(self) -> str:
        """The ``stream:executions`` id read up to (a new intent's reports come after)."""
        return self.market.last_ids[keys.EXECUTIONS]

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

    # --- holding and letting go ------------------------------------------------------

    def hold(self, state: BotState, series: Series, group: Group) -> None:
        self.bots[state.bot_id] = state
        self.group_of[state.bot_id] = (series, group)

    def forget(self, bot_id: str) -> None:
        state = self.bots.pop(bot_id, None)
        ref = self.group_of.pop(bot_id, None)
        self.dirty.discard(bot_id)
        if state is None or ref is None:
            return
        series, group = ref
        for gone in self.market.remove_bot(bot_id, series.symbol, series.interval, group.key[2]):
            self.unsubscribe.add((gone.symbol, gone.interval))

    # --- writing ------------------------------------------------------------------------

    def batch(self) -> CommitBatch:
        return CommitBatch(self.store, self._settle)

    async def commit(self, items: list[tuple[BotState, Change]]) -> None:
        """Write changes; a lost lease drops the bot at once; released bots let go."""
        batch = self.batch()
        try:
            for state, change in items:
                await batch.add(state, change)
        finally:
            await batch.drain()
        await self.after_commit()

    def _settle(self, items: list[tuple[BotState, Change]], results: list[bool]) -> None:
        """What the answer of one commit means: a bot whose lease or epoch was lost is
        dropped at once (it wrote and emitted nothing); the rest is done."""
        now = now_ms()
        for (state, change), ok in zip(items, results, strict=True):
            if not ok:
                log.warning("bot.lease_lost", bot=state.bot_id, epoch=state.epoch)
                self.forget(state.bot_id)
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
                self.forget(state.bot_id)
                self._released.append(state.bot_id)

    async def after_commit(self) -> None:
        """Publish the events of settled changes."""
        self.store.forget(self._released)
        self._released = []
        events, self._events = self._events, []
        if events:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    publish_nowait(pipe, keys.EVENTS, event, maxlen=EVENTS_MAXLEN)
                await pipe.execute()

    async def decided(self, holds: list[Decided]) -> None:
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
                self.forget(state.bot_id)

    # --- subscriptions -----------------------------------------------------------------

    async def subscribe(self, series: list[Series]) -> None:
        """Subscribe the series, with the warm-up their groups declare."""
        warmup: dict[tuple[str, str], int] = {}
        for x in series:
            needs = [g.evaluator.strategy.warmup_candles for g in x.groups.values()]
            needs += [g.evaluator.strategy.informative.get(x.interval, 0) for g in x.informs]
            if needs:
                warmup[(x.symbol, x.interval)] = max(needs)
        await subscriptions.add(self.redis, [(x.symbol, x.interval) for x in series], warmup)

    async def withdraw_subscriptions(self) -> None:
        """Remove subscriptions no bot needs any more (see :mod:`.subscriptions`)."""
        wanted = {k for k in self.unsubscribe if k not in self.market.series}
        self.unsubscribe.clear()
        await subscriptions.withdraw(self.redis, wanted)

    # --- background passes ---------------------------------------------------------------

    def pauser(self, budget_s: float = BACKGROUND_YIELD_S) -> Callable[[], Awaitable[None]]:
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
