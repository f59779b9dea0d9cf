"""Desired state is the truth (``bots``, each bot's ``desired``/``status``/``config`` and
lease, one ``RECONCILE`` call per 500 bots): a pass claims bots that need a runner (up
to this runner's fair share), stops held bots whose desired state is ``stopped`` or
that are gone, takes up a config changed behind its command's back, re-asserts market
subscriptions, and hands bots over when the fleet is uneven.
"""

from __future__ import annotations

import asyncio
import random

from services.runner.holdings import Holdings, text
from services.runner.leases import Leases
from services.runner.lifecycle import Lifecycle
from shared import keys
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS

log = get_logger(__name__)


class Reconciler:
    def __init__(self, held: Holdings, leases: Leases, lifecycle: Lifecycle) -> None:
        self.held = held
        self.leases = leases
        self.lifecycle = lifecycle

    async def reconcile_once(self) -> None:
        held, leases = self.held, self.leases
        await leases.read_fleet()
        ids = [text(b) for b in await held.redis.zrange(keys.BOTS, 0, -1)]
        digests = {b: st.config_digest for b, st in held.bots.items()}
        found = await held.store.reconcile(ids, digests, held.pauser())
        bots = held.bots
        candidates = [b for b, code in found if code == "claim" and b not in bots]
        to_stop = [b for b, code in found if code == "stop" and b in bots and not bots[b].stopping]
        changed = [
            b for b, code in found if code == "config" and b in bots and not bots[b].stopping
        ]
        to_stop.extend(set(bots) - set(ids))
        if to_stop:
            await self.lifecycle.stop(to_stop)
        for bot_id in changed:
            # The stored config is not the one this bot runs with (an update whose
            # command was lost): take it up as the command would have.
            log.info("bot.config_changed", bot=bot_id)
            await self.lifecycle.update(bot_id)
        share = leases.fair_share(len(candidates))
        if share:
            random.shuffle(candidates)
            jitter = held.settings.runner_claim_jitter_ms / 1000
            await asyncio.sleep(random.uniform(0, jitter))
            await self.lifecycle.claim(candidates[:share])
        await held.subscribe(list(held.market.series.values()))
        if not candidates:
            await leases.rebalance()

    async def loop(self) -> None:
        settings = self.held.settings
        # One heartbeat interval first, so runners started together see each other.
        await asyncio.sleep(1.0 + random.uniform(0, settings.runner_claim_jitter_ms / 1000))
        while True:
            try:
                await self.reconcile_once()
            except REDIS_ERRORS as exc:
                log.warning("reconcile.redis_error", error=str(exc))
            await asyncio.sleep(settings.runner_reconcile_interval_s)
