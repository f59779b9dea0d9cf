"""The consumer-group loop on ``stream:order-intents`` (group ``gateway``).

Reads batches with XREADGROUP COUNT/BLOCK, hands them to the :class:`Processor` and
acknowledges what it returns. Entries it did not return (an outcome still unknown)
stay in this consumer's pending list and are retried every ``retry_interval_s`` once
idle for ``retry_idle_ms``; pending entries of a dead instance are taken over with
XAUTOCLAIM once idle for ``claim_idle_ms``.

What this module promises:

- An entry this process is still handling is never taken up a second time by it: the
  read loops share one in-flight set of entry ids, and the retry and claim passes skip
  those (XAUTOCLAIM hands back our own idle entries too). Across processes the order
  record's compare-and-set is the guard (``transition.lua``).
- No entry brings the gateway down: a batch that raises is handled again one entry at
  a time, and an entry that still raises is given up (``Processor.give_up``: a dead
  letter and, when it decodes and was never sent, a REJECTED report) and acknowledged.
  An entry delivered more than ``max_deliveries`` times without an answer (each handling
  that ends, even with the entry left pending on purpose, resets its counter) is given
  up the same way, except an order that may be on the exchange, which keeps being
  resolved.
- Any loss of the stream or the group (NOGROUP, a blocked read woken by the stream's
  deletion, Redis restarted empty) recreates the group and emits ``stream.recreated``.
- While ``hold()`` gives a reason, no entry is read, retried or claimed; they stay
  pending for a healthy instance's XAUTOCLAIM.

Redis errors back off (capped, jittered) and the loop carries on. The stream is trimmed
with XTRIM MINID below what the group has acknowledged (DESIGN "Traps").
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from services.gateway.processor import Processor
from shared import keys
from shared.binance.backoff import backoff_delays
from shared.logging import get_logger
from shared.messages import Event
from shared.redis import REDIS_ERRORS, now_ms
from shared.streams import dead_letter, emit_event, ensure_group, is_group_lost

log = get_logger(__name__)

Entry = tuple[Any, dict[Any, Any]]
HOLD_CHECK_S = 0.5


def _transient(exc: BaseException) -> bool:
    """Errors that are about Redis, not about the entry: the entry stays pending and the
    loop's own handling (reconnect, reload scripts, recreate the group) applies."""
    return isinstance(exc, (*REDIS_ERRORS, NoScriptError)) or is_group_lost(exc)


class IntentConsumer:
    def __init__(
        self,
        redis: Any,
        processor: Processor,
        consumer: str,
        *,
        batch: int = 256,
        block_ms: int = 200,
        claim_idle_ms: int = 15_000,
        retry_interval_s: float = 1.0,
        trim_interval_s: float = 10.0,
        workers: int = 2,
        retry_idle_ms: int = 1000,
        max_deliveries: int = 10,
        hold: Callable[[], str] | None = None,
    ) -> None:
        self.workers = workers
        self.retry_idle_ms = retry_idle_ms
        self.redis = redis
        self.processor = processor
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.loop_at = 0  # epoch ms of the read loops' last pass (0: none yet)
        self.claim_idle_ms = claim_idle_ms
        self.retry_interval_s = retry_interval_s
        self.trim_interval_s = trim_interval_s
        self.max_deliveries = max_deliveries
        self.hold = hold
        self.stream = keys.ORDER_INTENTS
        self.group = keys.GATEWAY_GROUP
        self.ready = asyncio.Event()
        self.inflight: set[str] = set()  # entry ids some loop of this process is handling
        self.recreated = 0
        self._held = ""

    async def run(self) -> None:
        """Start-up work, then ``workers`` concurrent read loops (so one batch's Python
        work overlaps the previous batch's Redis round trips); the first also retries
        pending entries, claims dead consumers' entries and trims the stream."""
        await self._ensure_group()
        # Our own pending entries first (a restart under the same instance name).
        if not self._held_reason():
            await self._drain_pending()
        self.ready.set()
        loops = [
            asyncio.create_task(self._loop(i == 0), name=f"intents-{i}")
            for i in range(self.workers)
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    def _held_reason(self) -> str:
        """The hold's reason ('' = go on); logs each change once."""
        reason = self.hold() if self.hold is not None else ""
        if reason != self._held:
            if reason:
                log.warning("intents.held", reason=reason)
            else:
                log.info("intents.held", reason="", released=True)
            self._held = reason
        return reason

    async def _loop(self, housekeeper: bool) -> None:
        delays = backoff_delays(0.05, 5.0, random.Random())
        next_retry = next_claim = next_trim = time.monotonic()
        while True:
            self.loop_at = now_ms()  # the heartbeat's ``loop_at`` (shared/health.py)
            try:
                if self._held_reason():
                    await asyncio.sleep(HOLD_CHECK_S)
                    continue
                now = time.monotonic()
                if housekeeper and now >= next_claim:
                    await self._claim_dead()
                    next_claim = now + max(0.2, self.claim_idle_ms / 2000)
                if housekeeper and now >= next_retry:
                    await self._retry_pending()
                    next_retry = now + self.retry_interval_s
                if housekeeper and now >= next_trim:
                    await self._trim()
                    next_trim = now + self.trim_interval_s
                reply = await self.redis.xreadgroup(
                    self.group,
                    self.consumer,
                    {self.stream: ">"},
                    count=self.batch,
                    block=self.block_ms,
                )
                for _stream, entries in reply or []:
                    await self._process(entries)
                delays = backoff_delays(0.05, 5.0, random.Random())
            except NoScriptError:
                # Redis lost its script cache (restart, failover): the batch stays
                # pending and is retried from the pending list once they are back.
                log.warning("intents.noscript")
                await self.processor.store.load_scripts()
            except REDIS_ERRORS as exc:
                delay = next(delays)
                log.warning("intents.redis_error", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
            except ResponseError as exc:
                if is_group_lost(exc):
                    await self._recreate(str(exc))
                    continue
                # a refusal by Redis outside any one entry (e.g. the key of another
                # type): never fatal, retried with backoff
                delay = next(delays)
                log.error("intents.redis_refused", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def _ensure_group(self) -> None:
        await ensure_group(self.redis, self.stream, self.group)

    async def _recreate(self, why: str) -> None:
        """The stream or the group is gone: create them again and say so."""
        log.warning("intents.group_lost", stream=self.stream, error=why)
        await self._ensure_group()
        self.recreated += 1
        await emit_event(
            self.redis,
            Event(
                kind="stream.recreated",
                message=f"{self.stream} group {self.group} recreated: {why}",
                level="warning",
                service=self.processor.service,
                details={"stream": self.stream, "group": self.group, "error": why},
                ts=now_ms(),
            ),
        )

    async def _process(
        self, entries: list[Entry], deliveries: dict[str, int] | None = None
    ) -> None:
        """Handle ``entries`` (skipping any another loop of this process is handling) and
        acknowledge what may be acknowledged. ``deliveries``: times delivered per entry
        id, when known (entries claimed from another consumer or drained at start; our own
        deliberate retries do not count)."""
        mine = [(i, f) for i, f in entries if _text(i) not in self.inflight]
        ids = {_text(i) for i, _f in mine}
        self.inflight |= ids
        started = time.monotonic()
        try:
            live = [(i, f) for i, f in mine if f]
            gone = [i for i, f in mine if not f]  # trimmed while pending
            ack: list[Any] = []
            if deliveries and self.max_deliveries > 0:
                live, ack = await self._too_many(live, deliveries)
            if live:
                ack += await self._handle(live)
            if ack or gone:
                await self.redis.xack(self.stream, self.group, *ack, *gone)
            acked = {_text(i) for i in ack}
            kept = [i for i, _f in live if _text(i) not in acked]
            if kept:
                await self._handled_without_failing(kept, started)
        finally:
            self.inflight -= ids

    async def _handled_without_failing(self, entry_ids: list[Any], started: float) -> None:
        """Entries handled without failing and left pending on purpose (an outcome still
        unknown, an order the fleet budget delayed): their delivery counter goes back to
        0, so ``max_deliveries`` counts only deliveries that ended without an answer (a
        crash, a kill). Two live gateways may take a delayed entry from each other many
        times within the budget's minute; none of those is a poison pill.

        MIN-IDLE is the time since this handling began, so an entry another instance
        has claimed since then is left with it (its idle time is shorter)."""
        idle_ms = max(0, int((time.monotonic() - started) * 1000) - 1)
        await self.redis.xclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=idle_ms,
            message_ids=entry_ids,
            justid=True,
            retrycount=0,
        )

    async def _too_many(
        self, live: list[Entry], deliveries: dict[str, int]
    ) -> tuple[list[Entry], list[Any]]:
        """Give up entries delivered more than ``max_deliveries`` times; returns the
        entries still to handle and the ids to acknowledge."""
        keep: list[Entry] = []
        ack: list[Any] = []
        for entry_id, fields in live:
            count = deliveries.get(_text(entry_id), 0)
            if count <= self.max_deliveries:
                keep.append((entry_id, fields))
                continue
            reason = f"delivered {count} times (limit {self.max_deliveries})"
            if await self._give_up(entry_id, fields, reason):
                ack.append(entry_id)
            else:  # may be on the exchange: keeps being resolved
                keep.append((entry_id, fields))
        return keep, ack

    async def _handle(self, live: list[Entry]) -> list[Any]:
        """The processor on the batch; if it raises, on each entry alone, and an entry
        that still raises is given up. Redis trouble is not the entry's fault: raised."""
        try:
            return await self.processor.handle(live)
        except Exception as exc:  # isolation boundary: narrowed below
            if _transient(exc):
                raise
            log.warning("intents.batch_failed", count=len(live), error=repr(exc))
        ack: list[Any] = []
        for entry_id, fields in live:
            try:
                ack += await self.processor.handle([(entry_id, fields)])
            except Exception as exc:  # one entry's failure is its own
                if _transient(exc):
                    raise
                log.exception("intent.failed", entry_id=_text(entry_id))
                reason = f"handling failed: {type(exc).__name__}: {exc}"
                if await self._give_up(entry_id, fields, reason):
                    ack.append(entry_id)
        return ack

    async def _give_up(self, entry_id: Any, fields: dict[Any, Any], reason: str) -> bool:
        try:
            return await self.processor.give_up(entry_id, fields, reason)
        except Exception as exc:  # the last resort: keep the entry as a letter
            if _transient(exc):
                raise
            log.exception("intent.give_up_failed", entry_id=_text(entry_id))
            await dead_letter(
                self.redis,
                self.stream,
                entry_id,
                fields,
                f"{reason}; giving up failed: {type(exc).__name__}: {exc}",
                service=self.processor.service,
            )
            self.processor.figures.dead_letters += 1
            return True

    async def _drain_pending(self) -> None:
        start = "0"
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=self.batch
            )
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self._process(entries, await self._deliveries(entries))
            last = entries[-1][0]
            start = _text(last)

    async def _deliveries(self, entries: list[Entry]) -> dict[str, int]:
        """Times delivered of our pending ``entries`` (XPENDING over their id range)."""
        if not entries:
            return {}
        rows = await self.redis.xpending_range(
            self.stream,
            self.group,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries) + 1000,
            consumername=self.consumer,
        )
        return {_text(row["message_id"]): int(row["times_delivered"]) for row in rows}

    async def _retry_pending(self) -> None:
        """Re-run this consumer's entries idle for ``retry_idle_ms`` (outcomes that were
        still unknown), except those a loop of this process is still handling."""
        rows = await self.redis.xpending_range(
            self.stream,
            self.group,
            min="-",
            max="+",
            count=self.batch,
            consumername=self.consumer,
            idle=self.retry_idle_ms,
        )
        rows = [row for row in rows if _text(row["message_id"]) not in self.inflight]
        if not rows:
            return
        # JUSTID leaves the delivery counter alone: re-running our own entry whose outcome
        # we left open on purpose (unknown, or delayed by the fleet's weight budget for up
        # to a minute) is not a failed delivery. It only resets the idle time, so no other
        # instance takes the entry for a dead one's.
        claimed = await self.redis.xclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.retry_idle_ms,
            message_ids=[row["message_id"] for row in rows],
            justid=True,
        )
        if not claimed:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in claimed:
                pipe.xrange(self.stream, min=entry_id, max=entry_id)
            found = await pipe.execute()
        # an entry trimmed while pending comes back with no fields: acknowledged as gone
        entries = [
            rows_[0] if rows_ else (entry_id, {})
            for entry_id, rows_ in zip(claimed, found, strict=True)
        ]
        await self._process(entries)

    async def _claim_dead(self) -> None:
        start = "0-0"
        for _ in range(100):  # bounded per round
            reply = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch,
            )
            next_start, entries = reply[0], reply[1]
            # XAUTOCLAIM also hands back our own idle entries: never one still in hand
            entries = [(i, f) for i, f in entries if _text(i) not in self.inflight]
            if entries:
                log.info("intents.claimed", count=len(entries))
                await self._process(entries, await self._deliveries(entries))
            start = _text(next_start)
            if start == "0-0":
                return

    async def _trim(self) -> None:
        """XTRIM MINID to the oldest entry the group still needs."""
        try:
            groups = await self.redis.xinfo_groups(self.stream)
        except ResponseError:  # the stream is gone; the read loop recreates it (NOGROUP)
            return
        group = next((g for g in groups if _text(g.get("name")) == self.group), None)
        if group is None:
            return
        floor = _text(group.get("last-delivered-id"))
        pending = await self.redis.xpending(self.stream, self.group)
        if pending and pending.get("pending"):
            floor = min(floor, _text(pending["min"]), key=_id_key)
        if floor and floor != "0-0":
            await self.redis.xtrim(self.stream, minid=floor, approximate=True)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
