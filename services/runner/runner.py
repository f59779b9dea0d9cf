"""The runner shell, put together: one :class:`~.holdings.Holdings` (the bots held and
the writer of their changes) shared by the modules that each own one concern, and the
loops :func:`services.runner.app.main` runs.

- :mod:`.reader` — ``read``: one XREAD over every candle and tick stream of the held
  bots plus ``stream:executions``; executions, then candles (entries), then ticks
  (exits); urgent changes (intents, fills) first, HOLD logs after them.
- :mod:`.commands` — ``commands``: ``stream:bot-commands`` in batches; wakes claims and
  stops.
- :mod:`.desired` — ``reconcile``: desired state is the truth; claims, stops, config
  changes, subscriptions, hand-overs.
- :mod:`.leases` — ``renew``: every lease renewed, a lost one drops its bot at once;
  the fleet's loads and this runner's share; every lease let go on shutdown.
- :mod:`.housekeeping` — ``housekeeping``: the stale gate (:mod:`.stale`), marks
  flushed, the bounded wait of pending intents and their re-sends, subscriptions
  withdrawn.
- :mod:`.lifecycle` and :mod:`.adoption` — claiming, starting (an adopted bot's
  intents and missed candles settled first), stopping and updating bots.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from services.runner.commands import Commands
from services.runner.desired import Reconciler
from services.runner.holdings import Holdings, text
from services.runner.housekeeping import Housekeeping
from services.runner.leases import Leases
from services.runner.lifecycle import Lifecycle
from services.runner.reader import Reader
from services.runner.settings import RunnerSettings
from services.runner.stale import StaleGate
from shared import keys


class Runner:
    def __init__(self, redis: Any, settings: RunnerSettings) -> None:
        self.held = Holdings(redis, settings)
        self.gate = StaleGate(self.held)
        self.leases = Leases(self.held)
        self.lifecycle = Lifecycle(self.held, self.gate)
        self.reader = Reader(self.held, self.gate)
        self.commands = Commands(self.held, self.leases, self.lifecycle)
        self.reconciler = Reconciler(self.held, self.leases, self.lifecycle)
        self.housekeeping = Housekeeping(self.held, self.gate)

    def figures(self) -> dict[str, Any]:
        """The heartbeat's figures; ``loop_at`` is the read loop's last pass, so a stalled
        loop shows in the health report (shared/health.py)."""
        return {**self.held.figures(), "loop_at": self.held.last_loop_ms}

    async def start(self) -> None:
        """Read executions from here on (adoption scans back from each pending intent)."""
        await self.gate.refresh()
        last = await self.held.redis.xrevrange(keys.EXECUTIONS, count=1)
        self.held.market.last_ids[keys.EXECUTIONS] = text(last[0][0]) if last else "0-0"

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The runner's loops by name (each runs until cancelled)."""
        return {
            "read": self.reader.loop(),
            "commands": self.commands.loop(),
            "reconcile": self.reconciler.loop(),
            "renew": self.leases.renew_loop(),
            "housekeeping": self.housekeeping.loop(),
        }

    async def shutdown(self) -> None:
        """Let go of every lease (positions stay; another runner adopts at once)."""
        await self.leases.release_all()
        await self.held.store.close()
