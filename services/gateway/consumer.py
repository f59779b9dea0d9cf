"""The consumer-group loop on ``stream:order-intents`` (group ``gateway``).

Reads batches with XREADGROUP COUNT/BLOCK, hands them to the :class:`Processor` and
acknowledges what it returns. Entries it did not return (an outcome still unknown)
stay in this consumer's pending list and are retried every ``retry_interval_s`` once
idle for ``retry_idle_ms``; pending entries of a dead instance are taken over with XAUTOCLAIM
once idle for ``claim_idle_ms``. A deleted stream (NOGROUP) recreates the group; Redis
errors back off (capped, jittered) and the loop carries on. The stream is trimmed with
XTRIM MINID below what the group has acknowledged (DESIGN "Traps").
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from services.gateway.processor import Processor
from shared import keys
from shared.binance.backoff import backoff_delays
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS
from shared.streams import ensure_group, is_nogroup

log = get_logger(__name__)


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
    ) -> None:
        self.workers = workers
        self.retry_idle_ms = retry_idle_ms
        self.redis = redis
        self.processor = processor
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.retry_interval_s = retry_interval_s
        self.trim_interval_s = trim_interval_s
        self.stream = keys.ORDER_INTENTS
        self.group = keys.GATEWAY_GROUP
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Start-up work, then ``workers`` concurrent read loops (so one batch's Python
        work overlaps the previous batch's Redis round trips); the first also retries
        pending entries, claims dead consumers' entries and trims the stream."""
        await self._ensure_group()
        # Our own pending entries first (a restart under the same instance name).
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

    async def _loop(self, housekeeper: bool) -> None:
        delays = backoff_delays(0.05, 5.0, random.Random())
        next_retry = next_claim = next_trim = time.monotonic()
        while True:
            try:
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
            except ResponseError as exc:
                if not is_nogroup(exc):
                    raise
                log.warning("intents.nogroup", stream=self.stream)
                await self._ensure_group()
            except REDIS_ERRORS as exc:
                delay = next(delays)
                log.warning("intents.redis_error", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def _ensure_group(self) -> None:
        await ensure_group(self.redis, self.stream, self.group)

    async def _process(self, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        live = [(entry_id, fields) for entry_id, fields in entries if fields]
        gone = [entry_id for entry_id, fields in entries if not fields]  # trimmed while pending
        ack = await self.processor.handle(live) if live else []
        if ack or gone:
            await self.redis.xack(self.stream, self.group, *ack, *gone)

    async def _drain_pending(self) -> None:
        start = "0"
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=self.batch
            )
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self._process(entries)
            last = entries[-1][0]
            start = last.decode() if isinstance(last, bytes) else str(last)

    async def _retry_pending(self) -> None:
        """Re-run this consumer's entries idle for ``retry_idle_ms`` (outcomes that were
        still unknown); entries another loop of this process is working on are younger."""
        rows = await self.redis.xpending_range(
            self.stream,
            self.group,
            min="-",
            max="+",
            count=self.batch,
            consumername=self.consumer,
            idle=self.retry_idle_ms,
        )
        ids = [row["message_id"] for row in rows]
        if not ids:
            return
        entries = await self.redis.xclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.retry_idle_ms,
            message_ids=ids,
        )
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
            if entries:
                log.info("intents.claimed", count=len(entries))
                await self._process(entries)
            start = next_start.decode() if isinstance(next_start, bytes) else str(next_start)
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
