"""What the ledger copies from the bots' own records, every ``interval_s``: each bot's
closed round trips (``bot:{id}:trades``, read on from the last entry seen), its
configuration when it changed (``bot:{id}`` ``config``) and its equity figures of the
UTC day (``bot:{id}:stats``).

All three are idempotent in SQL (unique trip keys, config versions, one snapshot per bot
and day), so several ledgers polling the same bots, or one restarted, write nothing
twice. A round trip that does not parse is logged and skipped (it stays in Redis for
people); the database unreachable makes the pass retry later, as does Redis.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from services.ledger.dbstate import DbState
from services.ledger.writer import Batch, LedgerWriter, equity_row, trip_row
from shared import keys
from shared.binance.backoff import backoff_delays
from shared.bots import BotField
from shared.ledger.engine import is_unreachable
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS, now_ms

log = get_logger(__name__)

CHUNK = 200  # bots per pipeline
TRIPS_PER_READ = 1000


class BotRecorder:
    def __init__(
        self, redis: Any, writer: LedgerWriter, db: DbState, *, interval_s: float = 5.0
    ) -> None:
        self.redis = redis
        self.writer = writer
        self.db = db
        self.interval_s = interval_s
        self.cursors: dict[str, str] = {}  # bot id -> last bot:{id}:trades entry written
        self.passes = 0
        self.trips_written = 0
        self.configs_written = 0

    async def run(self) -> None:
        delays = backoff_delays(0.5, 30.0, random.Random())
        while True:
            try:
                await self.record_once()
                self.passes += 1
                delays = backoff_delays(0.5, 30.0, random.Random())
                await asyncio.sleep(self.interval_s)
            except REDIS_ERRORS as exc:
                delay = next(delays)
                log.warning("ledger.bots_redis_error", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
            except Exception as exc:  # the database away: the next pass tries again
                if not is_unreachable(exc):
                    raise
                await self.db.down(exc)
                delay = next(delays)
                log.warning("ledger.bots_db_unreachable", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def record_once(self) -> None:
        """One pass over every bot."""
        bot_ids = [_text(b) for b in await self.redis.zrange(keys.BOTS, 0, -1)]
        for start in range(0, len(bot_ids), CHUNK):
            await self._record(bot_ids[start : start + CHUNK])

    async def _record(self, bot_ids: list[str]) -> None:
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                pipe.hget(keys.bot(bot_id), BotField.CONFIG.value)
                pipe.hgetall(keys.bot_stats(bot_id))
                start = self.cursors.get(bot_id)
                pipe.xrange(
                    keys.bot_trades(bot_id),
                    min=f"({start}" if start else "-",
                    count=TRIPS_PER_READ,
                )
            replies = await pipe.execute()
        batch = Batch()
        cursors: dict[str, str] = {}
        equity = []
        configs: list[tuple[str, str]] = []
        for n, bot_id in enumerate(bot_ids):
            config, stats, trips = replies[3 * n : 3 * n + 3]
            if config:
                configs.append((bot_id, _text(config)))
            if stats:
                text_stats = {_text(k): _text(v) for k, v in stats.items()}
                try:
                    equity.append(equity_row(bot_id, text_stats, now))
                except (ArithmeticError, ValueError) as exc:
                    log.warning("ledger.stats_malformed", bot=bot_id, error=str(exc))
            for entry_id, fields in trips:
                cursors[bot_id] = _text(entry_id)
                try:
                    batch.trips.append(
                        trip_row(bot_id, {_text(k): _text(v) for k, v in fields.items()})
                    )
                except ValueError as exc:
                    log.warning(
                        "ledger.trip_malformed",
                        bot=bot_id,
                        entry_id=_text(entry_id),
                        error=str(exc),
                    )
        if batch.trips:
            written = await self.writer.write(batch)
            self.trips_written += written.trips
        for bot_id, config in configs:
            if await self.writer.record_config(bot_id, config, now):
                self.configs_written += 1
        await self.writer.record_equity(equity)
        if batch.trips or configs or equity:  # the database answered
            await self.db.ok()
        self.cursors.update(cursors)  # only once committed


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
