"""Once a second: the stale-data gate's pass (:mod:`.stale`), price marks flushed
(books marked by ticks are written lazily), the bounded wait of every pending intent
(:meth:`.core.BotState.check_pending`: ``needs_attention`` past the bound, a waiting
stop goes on) and re-sends of intents without a final report (same id, this owner's
epoch), then subscriptions no bot needs withdrawn.
"""

from __future__ import annotations

import asyncio

from services.runner.core import Change
from services.runner.holdings import Holdings
from services.runner.stale import StaleGate
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS, now_ms

log = get_logger(__name__)


class Housekeeping:
    def __init__(self, held: Holdings, gate: StaleGate) -> None:
        self.held = held
        self.gate = gate

    async def once(self) -> None:
        held = self.held
        await self.gate.refresh()
        now = now_ms()
        resend_ms = int(held.settings.runner_pending_resend_s * 1000)
        bound_ms = int(held.settings.runner_pending_timeout_s * 1000)
        async with held.lock:
            changes = self.gate.changes(now)
            for bot_id in held.dirty:
                state = held.bots.get(bot_id)
                if state is not None:
                    changes.setdefault(bot_id, (state, Change()))[1].book = True
            held.dirty.clear()
            exec_from = held.exec_from
            resend_before = now - resend_ms
            for bot_id, state in held.bots.items():
                pending, unresolved = state.pending, state.unresolved
                # Most bots have nothing due (after a burst: thousands pending, under
                # the lock): tell that without building changes.
                if (
                    pending is None
                    or (pending.sent_at > resend_before and now - pending.since < bound_ms)
                ) and (
                    unresolved is None
                    or unresolved.superseded
                    or unresolved.sent_at > resend_before
                ):
                    continue
                # The bounded wait, then re-sends of what has no final report yet.
                change = state.check_pending(now, bound_ms, exec_from)
                change.merge(state.resend(now, resend_before))
                if not change.empty:
                    changes.setdefault(bot_id, (state, Change()))[1].merge(change)
            await held.commit(list(changes.values()))
        await held.withdraw_subscriptions()

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.once()
            except REDIS_ERRORS as exc:
                log.warning("housekeeping.redis_error", error=str(exc))
