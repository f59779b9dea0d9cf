"""Bot commands (``stream:bot-commands``, XREAD fan-out: every runner reads every
command). They only wake runners, desired state being the truth: a read's commands are
handled together (the last one of each bot wins), stops in one pass, starts claimed in
chunks after one jitter (the least loaded runner first, up to its fair share; then a
sweep of what nobody took; the lease decides who wins), never a sleep per command, so
10,000 starts run within seconds.
"""

from __future__ import annotations

import asyncio
import random

from services.runner.holdings import Holdings, text
from services.runner.leases import Leases
from services.runner.lifecycle import CLAIM_CHUNK, Lifecycle
from shared import keys
from shared.logging import get_logger
from shared.messages import BotCommand, CommandAction
from shared.redis import REDIS_ERRORS
from shared.streams import decode_entry

log = get_logger(__name__)


class Commands:
    def __init__(self, held: Holdings, leases: Leases, lifecycle: Lifecycle) -> None:
        self.held = held
        self.leases = leases
        self.lifecycle = lifecycle

    async def loop(self) -> None:
        redis = self.held.redis
        last = await redis.xrevrange(keys.BOT_COMMANDS, count=1)
        last_id = text(last[0][0]) if last else "0-0"
        count = self.held.settings.runner_command_batch
        while True:
            try:
                reply = await redis.xread({keys.BOT_COMMANDS: last_id}, count=count, block=1000)
            except REDIS_ERRORS as exc:
                log.warning("commands.redis_error", error=str(exc))
                await asyncio.sleep(0.5 * random.uniform(0.5, 1.0))
                continue
            commands: list[BotCommand] = []
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = text(entry_id)
                    command = await decode_entry(
                        redis, keys.BOT_COMMANDS, entry_id, fields, BotCommand, service="runner"
                    )
                    if command is not None:
                        commands.append(command)
            if commands:
                try:
                    await self.handle(commands)
                except REDIS_ERRORS as exc:
                    log.warning("command.redis_error", error=str(exc))

    async def handle(self, commands: list[BotCommand]) -> None:
        """One read's commands together: the last command of each bot wins (desired
        state is the truth; the commands only wake runners), stops in one pass, starts
        claimed in chunks after one jitter, never a sleep per command."""
        held, leases = self.held, self.leases
        last: dict[str, CommandAction] = {}
        for command in commands:
            last.pop(command.bot_id, None)  # keep the order of the latest commands
            last[command.bot_id] = command.action
        stops = [b for b, a in last.items() if a in (CommandAction.STOP, CommandAction.DELETE)]
        updates = [b for b, a in last.items() if a is CommandAction.UPDATE]
        starts = [b for b, a in last.items() if a is CommandAction.START and b not in held.bots]
        log.info("commands", starts=len(starts), stops=len(stops), updates=len(updates))
        if stops:
            await self.lifecycle.stop(stops)
        for bot_id in updates:
            await self.lifecycle.update(bot_id)
        if not starts:
            return
        # The least loaded runner tries first; the lease decides who wins.
        jitter = held.settings.runner_claim_jitter_ms / 1000
        await asyncio.sleep(jitter * leases.rank() + random.uniform(0, jitter))
        share = len(starts) if len(leases.fleet) <= 1 else leases.fair_share(len(starts))
        # Up to its share, going past bots another runner took first.
        started, i = 0, 0
        while started < share and i < len(starts):
            part = starts[i : i + min(CLAIM_CHUNK, share - started)]
            i += len(part)
            started += await self.lifecycle.claim(part)
        if share < len(starts):
            # Shares come from heartbeats up to a second old, so together they may fall
            # short by a few bots: once the others have had their turn, sweep what
            # nobody took (a lease held elsewhere costs the CLAIM script one SET NX),
            # rather than leave it to the next reconcile pass. The lease decides races;
            # an uneven result is evened out by the hand-over of idle bots.
            await asyncio.sleep(jitter * (leases.rank() + 1) + random.uniform(0, jitter))
            await self.lifecycle.claim(starts)
