"""Leases and the fleet's balance: every held lease renewed (a bot whose lease or epoch
is lost is dropped at once), the fleet's loads read from fresh heartbeats, this
runner's fair share of unowned bots (:func:`.fleet.fair_share`), handing over bots
above the average (:func:`.fleet.excess`), and every lease let go on shutdown.
"""

from __future__ import annotations

import asyncio
import random

from services.runner import fleet
from services.runner.holdings import Holdings
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS, heartbeats, now_ms

log = get_logger(__name__)

# A runner whose heartbeat (written every second) is older than this is not counted in
# the fleet's loads, so bots of a dead or paused runner are adopted without waiting
# for its health key to expire.
HEARTBEAT_FRESH_MS = 2500


class Leases:
    def __init__(self, held: Holdings) -> None:
        self.held = held
        self.fleet: dict[str, tuple[int, int]] = {}  # live runners: instance -> (bots, capacity)
        self._excess_streak = 0

    # --- renewals ------------------------------------------------------------------------

    async def renew_once(self) -> None:
        held = self.held
        pairs = [(b, s.epoch) for b, s in held.bots.items()]
        if not pairs:
            return
        results = await held.store.renew(pairs, held.settings.runner_lease_ms, held.pauser())
        # A bot that moved to a new epoch meanwhile (a superseded exit) was not renewed
        # this time but is not lost: the next pass renews it.
        lost = [
            b
            for (b, epoch), ok in zip(pairs, results, strict=True)
            if not ok and (b not in held.bots or held.bots[b].epoch == epoch)
        ]
        if lost:
            async with held.lock:
                for bot_id in lost:
                    log.warning("bot.lease_lost", bot=bot_id)
                    held.forget(bot_id)

    async def renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.held.settings.renew_interval_s)
            try:
                await self.renew_once()
            except REDIS_ERRORS as exc:
                log.warning("renew.redis_error", error=str(exc))

    # --- the fleet -----------------------------------------------------------------------

    async def read_fleet(self) -> None:
        held = self.held
        found: dict[str, tuple[int, int]] = {}
        now = now_ms()
        for beat in await heartbeats(held.redis, "runner"):
            try:
                if now - int(beat.get("ts") or 0) > HEARTBEAT_FRESH_MS:
                    continue  # paused or dead: its key has not expired yet, but it is gone
                found[beat["instance"]] = (
                    int(beat.get("bots") or 0),
                    int(beat.get("capacity") or 0),
                )
            except ValueError:
                continue
        found[held.owner] = (len(held.bots), held.settings.runner_capacity)
        self.fleet = found

    def fair_share(self, candidates: int) -> int:
        """How many of ``candidates`` unowned bots this runner should claim now."""
        held = self.held
        mine = len(held.bots) + len(held.claiming)
        return fleet.fair_share(
            self.fleet, held.owner, mine, held.settings.runner_capacity, candidates
        )

    def rank(self) -> int:
        """How many live runners hold fewer bots than this one (the least loaded tries
        first)."""
        mine = len(self.held.bots)
        return sum(1 for i, (b, _) in self.fleet.items() if i != self.held.owner and b < mine)

    def excess(self) -> int:
        """How many bots to hand over so that the fleet's loads even out."""
        return fleet.excess(self.fleet, self.held.owner, len(self.held.bots))

    async def rebalance(self) -> None:
        """Hand over bots above the fleet average (released leases are adopted with their
        books by runners below it)."""
        held = self.held
        count = self.excess()
        self._excess_streak = self._excess_streak + 1 if count > 0 else 0
        if self._excess_streak < 3:  # heartbeats lag: act on a lasting imbalance only
            return
        async with held.lock:
            idle = [b for b, st in held.bots.items() if st.pending is None and not st.stopping]
            random.shuffle(idle)
            chosen = idle[:count]
            self._excess_streak = 0
            for bot_id in chosen:
                held.forget(bot_id)
        if chosen:
            await held.store.release(chosen)
            self.fleet[held.owner] = (len(held.bots), held.settings.runner_capacity)
            log.info("bots.rebalanced", handed_over=len(chosen), held=len(held.bots))

    # --- shutdown ------------------------------------------------------------------------

    async def release_all(self) -> None:
        """Let go of every lease (positions stay; another runner adopts at once)."""
        held = self.held
        async with held.lock:
            ids = list(held.bots)
            for bot_id in ids:
                held.forget(bot_id)
        if ids:
            try:
                await held.store.release(ids)
            except REDIS_ERRORS as exc:
                log.warning("shutdown.release_failed", error=str(exc))
