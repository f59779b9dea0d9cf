"""``botfleet ledger`` top to bottom: settings in, connect Redis, open the database and
migrate it (waiting while it is unreachable, its health saying so), start the loops,
wait for shutdown."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from services.ledger.consumer import ExecutionConsumer
from services.ledger.dbstate import DbState
from services.ledger.migrations import MigrationError, migrate
from services.ledger.settings import LedgerSettings
from services.ledger.snapshots import BotRecorder
from services.ledger.writer import LedgerWriter
from shared.binance.backoff import backoff_delays
from shared.ledger.engine import create_engine, is_unreachable, sqlite_path
from shared.logging import get_logger
from shared.redis import Heartbeat, connect
from shared.service import cancel_tasks, supervise

log = get_logger(__name__)


def _sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file (the data directory on a first run)."""
    path = sqlite_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


async def _migrate_when_reachable(engine: Any, db: DbState, retry_max_s: float) -> int:
    delays = backoff_delays(0.2, retry_max_s, random.Random())
    while True:
        try:
            version = await migrate(engine)
        except MigrationError:
            raise
        except Exception as exc:  # only an unreachable database is waited for
            if not is_unreachable(exc):
                raise
            await db.down(exc)
            delay = next(delays)
            log.warning("ledger.db_unreachable", error=db.error, retry_in=round(delay, 3))
            await asyncio.sleep(delay)
            continue
        await db.ok()
        return version


async def main(settings: LedgerSettings, stop: asyncio.Event) -> None:
    _sqlite_dir(settings.ledger_database_url)
    redis = await connect(settings.redis_url, max_connections=8)
    engine = create_engine(settings.ledger_database_url)
    db = DbState(redis, settings.instance)
    writer = LedgerWriter(engine)
    consumer = ExecutionConsumer(
        redis,
        writer,
        settings.instance,
        db,
        batch=settings.ledger_batch,
        block_ms=settings.ledger_block_ms,
        claim_idle_ms=settings.ledger_claim_idle_ms,
        retry_max_s=settings.ledger_db_retry_max_s,
        workers=settings.ledger_workers,
    )
    recorder = BotRecorder(redis, writer, db, interval_s=settings.ledger_poll_interval_s)
    schema_version = 0

    def figures() -> dict[str, Any]:
        f = consumer.figures
        return {
            "db": db.state,
            "db_error": db.error,
            "db_since": db.since,
            "db_retries": db.retries,
            "dialect": engine.dialect.name,
            "schema_version": schema_version,
            "batches": f.batches,
            "entries": f.entries,
            "orders_written": f.orders_written,
            "fills_written": f.fills_written,
            "trips_written": recorder.trips_written,
            "configs_written": recorder.configs_written,
            "bot_passes": recorder.passes,
            "dead_letters": f.dead_letters,
            "last_acked": f.last_acked,
        }

    heartbeat = Heartbeat(redis, "ledger", settings.instance, figures, interval_s=1.0)
    beating = asyncio.create_task(heartbeat.run(), name="heartbeat")
    try:
        migrating = asyncio.create_task(
            _migrate_when_reachable(engine, db, settings.ledger_db_retry_max_s), name="migrate"
        )
        stopping = asyncio.create_task(stop.wait(), name="stop")
        await asyncio.wait([migrating, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not migrating.done():
            await cancel_tasks([migrating, stopping])
            return
        stopping.cancel()
        try:
            schema_version = migrating.result()
        except MigrationError as exc:
            log.error("ledger.migration_failed", error=str(exc))
            raise
        log.info("ledger.ready", dialect=engine.dialect.name, schema_version=schema_version)
        await supervise(stop, {"executions": consumer.run(), "bots": recorder.run()})
    finally:
        await cancel_tasks([beating])
        await heartbeat.clear()
        await redis.aclose()
        await engine.dispose()
