"""One round's urgent changes (intents, fills), sent to Redis in chunks while the runner
is still deciding, so that Redis writes one chunk while Python builds the next.

Each chunk is one fenced ``COMMIT`` call (:mod:`.scripts`) on a connection of its own.
A chunk holds distinct bots; a bot that changes again after its chunk left waits for
every chunk in flight to land first, so one bot's writes never overtake each other. The
first chunks are small: the first intent of a round leaves at once, alone, and lands
before the runner decides on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.runner.core import BotState, Change
from services.runner.store import BotStore

Settle = Callable[[list[tuple[BotState, Change]], list[bool]], None]

FIRST_CHUNKS = (1, 32)  # the first intent of a round leaves alone, at once, and lands
CHUNK = 384
MAX_IN_FLIGHT = 8


class CommitBatch:
    def __init__(
        self,
        store: BotStore,
        settle: Settle,
        *,
        first: tuple[int, ...] = FIRST_CHUNKS,
        chunk: int = CHUNK,
        in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.store = store
        self.settle = settle
        self.limits = list(first)
        self.chunk = chunk
        self.limit = self.limits.pop(0) if self.limits else chunk
        self.max_in_flight = in_flight
        self.items: dict[str, tuple[BotState, Change]] = {}
        self.sent: set[str] = set()
        self.in_flight: list[tuple[list[tuple[BotState, Change]], asyncio.Task[list[bool]]]] = []

    async def add(self, state: BotState, change: Change) -> None:
        if change.empty:
            return
        bot_id = state.bot_id
        if bot_id in self.sent:
            await self.drain()  # its earlier change must land before this one
        current = self.items.get(bot_id)
        if current is None:
            self.items[bot_id] = (state, change)
        else:
            current[1].merge(change)
        if len(self.items) >= self.limit:
            await self.flush()

    async def flush(self) -> None:
        """Send what is collected (without waiting for the answer)."""
        if not self.items:
            return
        chunk = list(self.items.values())
        self.items = {}
        self.limit = self.limits.pop(0) if self.limits else self.chunk
        self.sent.update(self.items_ids(chunk))
        written = asyncio.Event()
        task = asyncio.create_task(self.store.send(self.store.encode(chunk), written))
        self.in_flight.append((chunk, task))
        running = [t for _, t in self.in_flight if not t.done()]
        if len(self.in_flight) == 1:
            # The round's first chunk (its first intent) is awaited to the end: a round
            # trip, during which the runner leaves the CPU to the intent's consumer
            # instead of keeping it and Redis busy with the next chunks (on two cores
            # the gateway would otherwise wait ~1-2 ms to be scheduled).
            await asyncio.wait([task])
        elif len(running) >= self.max_in_flight:  # bounded connections: wait for one
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        else:
            await written.wait()  # the request is on its way; Redis works while we decide

    async def drain(self) -> None:
        """Send the rest and wait for every answer; settles each chunk in order. On an
        error, every chunk in flight is still awaited before the first error is raised."""
        try:
            await self.flush()
        finally:
            await self._collect()

    async def _collect(self) -> None:
        in_flight, self.in_flight = self.in_flight, []
        self.sent.clear()
        results = await asyncio.gather(*(t for _, t in in_flight), return_exceptions=True)
        error: BaseException | None = None
        for (chunk, _), result in zip(in_flight, results, strict=True):
            if isinstance(result, BaseException):
                error = error or result
            else:
                self.settle(chunk, result)
        if error is not None:
            raise error

    @staticmethod
    def items_ids(chunk: list[tuple[BotState, Change]]) -> list[str]:
        return [s.bot_id for s, _ in chunk]
