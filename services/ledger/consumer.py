"""The ledger's consumer-group loop on ``stream:executions`` (group ``ledger``).

A batch is read (XREADGROUP COUNT/BLOCK), decoded, written in one transaction and only
then acknowledged, so an entry is acknowledged only once its rows are committed; a
crash anywhere before XACK leaves the batch pending, and writing it again inserts
nothing twice (unique keys). ``workers`` loops do this side by side, so one batch's
database round trips overlap the next one's Redis read and decoding. While a batch cannot be written, nothing more is read:
that is the back-pressure (at most ``workers`` batches in hand), and the stream keeps
the entries for later.

- The database unreachable: the batch is kept and written again with capped, jittered
  backoff until it goes in; :class:`DbState` says so in the health key meanwhile.
- A batch the database refuses for its content (not its reachability) is written one
  report at a time; a report that is still refused becomes a dead letter with the
  reason and is acknowledged, so one bad row never holds the ledger.
- An entry that does not decode is a dead letter (``shared.streams.decode_entry``).
- Pending entries of a dead ledger instance are taken over with XAUTOCLAIM once idle
  for ``claim_idle_ms``; this instance's own pending entries are read first at start.
- Redis errors back off and the loop carries on; a lost stream or group is recreated.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from services.ledger.dbstate import SERVICE, DbState
from services.ledger.writer import Batch, LedgerWriter, Written
from shared import keys
from shared.binance.backoff import backoff_delays
from shared.ledger.engine import is_unreachable
from shared.logging import get_logger
from shared.messages import ExecutionReport
from shared.redis import REDIS_ERRORS
from shared.retention import id_key
from shared.streams import dead_letter, decode_entry, ensure_group, is_group_lost

log = get_logger(__name__)

Entry = tuple[Any, dict[Any, Any]]


@dataclass(slots=True)
class Figures:
    batches: int = 0
    entries: int = 0
    orders_written: int = 0
    fills_written: int = 0
    dead_letters: int = 0
    last_acked: str = ""  # the newest entry id acknowledged
    recreated: int = 0


class ExecutionConsumer:
    def __init__(
        self,
        redis: Any,
        writer: LedgerWriter,
        consumer: str,
        db: DbState,
        *,
        batch: int = 1000,
        block_ms: int = 500,
        claim_idle_ms: int = 30_000,
        retry_max_s: float = 10.0,
        workers: int = 2,
    ) -> None:
        self.workers = workers
        self.redis = redis
        self.writer = writer
        self.consumer = consumer
        self.db = db
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.retry_max_s = retry_max_s
        self.stream = keys.EXECUTIONS
        self.group = keys.LEDGER_GROUP
        self.figures = Figures()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Read own pending entries first (a restart under the same name), then loop."""
        delays = backoff_delays(0.05, 5.0, random.Random())
        while not self.ready.is_set():
            try:
                await ensure_group(self.redis, self.stream, self.group)
                await self._drain_pending()
                self.ready.set()
            except REDIS_ERRORS as exc:
                delay = next(delays)
                log.warning("ledger.redis_error", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
        loops = [
            asyncio.create_task(self._loop(i == 0), name=f"executions-{i}")
            for i in range(self.workers)
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _loop(self, housekeeper: bool) -> None:
        """One read-write-ack loop; the first also takes over a dead ledger's entries.
        Each loop holds at most one batch: ``workers`` batches in hand at most."""
        delays = backoff_delays(0.05, 5.0, random.Random())
        next_claim = time.monotonic()
        while True:
            try:
                if housekeeper and time.monotonic() >= next_claim:
                    await self._claim_dead()
                    next_claim = time.monotonic() + max(0.2, self.claim_idle_ms / 2000)
                reply = await self.redis.xreadgroup(
                    self.group,
                    self.consumer,
                    {self.stream: ">"},
                    count=self.batch,
                    block=self.block_ms,
                )
                for _stream, entries in reply or []:
                    await self.process(entries)
                delays = backoff_delays(0.05, 5.0, random.Random())
            except REDIS_ERRORS as exc:
                delay = next(delays)
                log.warning("ledger.redis_error", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
            except ResponseError as exc:
                if is_group_lost(exc):
                    log.warning("ledger.group_lost", stream=self.stream, error=str(exc))
                    await ensure_group(self.redis, self.stream, self.group)
                    self.figures.recreated += 1
                    continue
                delay = next(delays)
                log.error("ledger.redis_refused", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def process(self, entries: list[Entry]) -> None:
        """Decode, write (until committed), then acknowledge ``entries``."""
        reports: list[tuple[str, ExecutionReport]] = []
        ack: list[Any] = []
        for entry_id, fields in entries:
            ack.append(entry_id)
            if not fields:  # trimmed while pending: nothing left to write
                continue
            report = await decode_entry(
                self.redis, self.stream, entry_id, fields, ExecutionReport, service=SERVICE
            )
            if report is None:
                self.figures.dead_letters += 1
                continue
            reports.append((_text(entry_id), report))
        if reports:
            await self._write(reports, entries)
        if ack:
            await self.redis.xack(self.stream, self.group, *ack)
            newest = max((_text(i) for i in ack), key=id_key)
            if not self.figures.last_acked or id_key(newest) > id_key(self.figures.last_acked):
                self.figures.last_acked = newest  # the loops finish out of order
        self.figures.batches += 1
        self.figures.entries += len(entries)

    async def _write(
        self, reports: list[tuple[str, ExecutionReport]], entries: list[Entry]
    ) -> None:
        batch = Batch()
        for stream_id, report in reports:
            batch.add_report(report, stream_id)
        try:
            self._count(await self._commit(batch))
            return
        except Exception as exc:  # the database refused the content: isolate below
            if is_unreachable(exc):
                raise
            log.warning("ledger.batch_refused", count=len(reports), error=repr(exc))
        fields_of = {_text(i): f for i, f in entries}
        for stream_id, report in reports:
            one = Batch()
            one.add_report(report, stream_id)
            try:
                self._count(await self._commit(one))
            except Exception as exc:  # this report's rows are refused: keep it as a letter
                if is_unreachable(exc):
                    raise
                self.figures.dead_letters += 1
                await dead_letter(
                    self.redis,
                    self.stream,
                    stream_id,
                    fields_of.get(stream_id, {}),
                    f"ledger refused the rows: {type(exc).__name__}: {exc}"[:1000],
                    service=SERVICE,
                )

    async def _commit(self, batch: Batch) -> Written:
        """Write ``batch``, retrying while the database is unreachable (capped backoff)."""
        delays = backoff_delays(0.1, self.retry_max_s, random.Random())
        while True:
            try:
                written = await self.writer.write(batch)
            except Exception as exc:  # classified: only "unreachable" is retried here
                if not is_unreachable(exc):
                    raise
                await self.db.down(exc)
                delay = next(delays)
                log.warning("ledger.db_unreachable", error=self.db.error, retry_in=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            await self.db.ok()
            return written

    def _count(self, written: Written) -> None:
        self.figures.orders_written += written.orders
        self.figures.fills_written += written.fills

    async def _drain_pending(self) -> None:
        start = "0"
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=self.batch
            )
            entries = reply[0][1] if reply else []
            if not entries:
                return
            await self.process(entries)
            start = _text(entries[-1][0])

    async def _claim_dead(self) -> None:
        """Take over entries another ledger left pending for ``claim_idle_ms``."""
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
                log.info("ledger.claimed", count=len(entries))
                await self.process(entries)
            start = _text(next_start)
            if start == "0-0":
                return


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
