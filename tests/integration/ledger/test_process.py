"""``botfleet ledger`` as a real process on the session's Redis and a real database:
exactly once under kill -9 mid-batch and under redelivery, and a database that goes
away (its connections cut on purpose) holds every acknowledgement until it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.writer import Batch, LedgerWriter
from shared import keys
from shared.ledger import schema
from shared.messages import Event, ExecutionReport, decode_as
from shared.streams import ensure_group
from tests.integration.ledger.helpers import count, fill_keys, pending, publish, report
from tests.integration.ledger.proxy import CuttableProxy
from tests.support.postgres import PostgresServer
from tests.support.processes import BotfleetProcess


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, proc: BotfleetProcess, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"ledger exited waiting for {what}:\n{proc.log_text()[-3000:]}")
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout}s:\n{proc.log_text()[-3000:]}")


def ledger_process(
    tmp_path: Path, redis_url: str, database_url: str, instance: str, **env: str
) -> BotfleetProcess:
    return BotfleetProcess(
        ["ledger", "--database-url", database_url, "--instance", instance],
        tmp_path / f"ledger-{instance}.log",
        {"BOTFLEET_REDIS_URL": redis_url, **env},
    )


async def health(redis: Any, instance: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.health("ledger", instance))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_kill_9_mid_batch_then_restart_writes_every_fill_exactly_once(
    tmp_path: Path, redis: Any, clean_redis_url: str, engine: AsyncEngine, database_url: str,
    processes: list[Any],
) -> None:  # fmt: skip
    reports = [report(n, fills=2) for n in range(4000)]
    await publish(redis, reports)
    proc = ledger_process(
        tmp_path, clean_redis_url, database_url, "l1", BOTFLEET_LEDGER_BATCH="100"
    ).start()
    processes.append(proc)

    async def some_written() -> bool:
        return await count(engine, schema.fills) > 0

    await eventually(some_written, "the first committed batch", proc)
    proc.kill()  # SIGKILL: no shutdown, batches half read, maybe committed and not acked
    at_kill = await count(engine, schema.fills)
    assert 0 < at_kill < 8000, "the kill must land while the ledger is still writing"
    assert await pending(redis) > 0 or at_kill < 8000

    proc.start()  # the same instance name: its own pending entries are read first

    async def all_acked() -> bool:
        return await pending(redis) == 0 and (await health(redis, "l1")).get(
            "last_acked"
        ) == _last_id(await redis.xrevrange(keys.EXECUTIONS, count=1))

    await eventually(all_acked, "every entry acknowledged", proc)
    assert await count(engine, schema.orders) == 4000
    assert await count(engine, schema.fills) == 8000
    assert len(set(await fill_keys(engine))) == 8000


def _last_id(entries: list[Any]) -> str:
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def test_entries_a_dead_ledger_left_pending_are_claimed_and_written_once(
    tmp_path: Path, redis: Any, clean_redis_url: str, engine: AsyncEngine, database_url: str,
    processes: list[Any],
) -> None:  # fmt: skip
    """A ledger read 300 entries and committed the first 150, then died before XACK."""
    await publish(redis, [report(n) for n in range(300)])
    await ensure_group(redis, keys.EXECUTIONS, keys.LEDGER_GROUP)
    reply = await redis.xreadgroup(keys.LEDGER_GROUP, "dead", {keys.EXECUTIONS: ">"}, count=300)
    entries = reply[0][1]
    assert len(entries) == 300
    batch = Batch()
    for entry_id, fields in entries[:150]:
        batch.add_report(decode_as(fields, ExecutionReport), entry_id.decode())
    await LedgerWriter(engine).write(batch)
    # and a replay: the gateway republished 50 stored reports (new entries, same intents)
    await publish(redis, [report(n) for n in range(100, 150)])

    proc = ledger_process(
        tmp_path, clean_redis_url, database_url, "l2", BOTFLEET_LEDGER_CLAIM_IDLE_MS="300"
    ).start()
    processes.append(proc)

    async def claimed() -> bool:
        return (
            await pending(redis) == 0
            and int((await health(redis, "l2")).get("entries", "0")) >= 350
        )

    await eventually(claimed, "the dead consumer's entries claimed and acknowledged", proc)
    assert await count(engine, schema.orders) == 300
    assert await count(engine, schema.fills) == 300
    info = await redis.xinfo_consumers(keys.EXECUTIONS, keys.LEDGER_GROUP)
    assert {c["name"].decode(): c["pending"] for c in info}.get("dead", 0) == 0


async def test_database_away_holds_every_ack_until_it_is_back(
    tmp_path: Path, redis: Any, clean_redis_url: str, postgres_server: PostgresServer,
    processes: list[Any],
) -> None:  # fmt: skip
    from shared.ledger.engine import create_engine

    direct_url = postgres_server.create_database()
    proxy = CuttableProxy(postgres_server.port).start()
    via_proxy = direct_url.replace(f":{postgres_server.port}/", f":{proxy.port}/")
    engine = create_engine(direct_url)
    proc = ledger_process(
        tmp_path, clean_redis_url, via_proxy, "l3", BOTFLEET_LEDGER_DB_RETRY_MAX_S="0.5"
    ).start()
    processes.append(proc)
    try:

        async def db_ok() -> bool:
            return (await health(redis, "l3")).get("db") == "ok"

        await eventually(db_ok, "the ledger migrated through the proxy", proc)
        proxy.cut()
        await publish(redis, [report(n) for n in range(100)])

        async def waiting() -> bool:
            h = await health(redis, "l3")
            return h.get("db") == "unreachable" and int(h["db_retries"]) >= 3

        await eventually(waiting, "health saying unreachable, retried three times", proc)
        h = await health(redis, "l3")
        assert h["db_error"] and h["batches"] == "0"
        assert await count(engine, schema.fills) == 0  # nothing committed...
        (group,) = await redis.xinfo_groups(keys.EXECUTIONS)
        in_hand = await pending(redis)
        assert in_hand >= 1 and group["entries-read"] == in_hand  # ...nothing acknowledged
        assert in_hand <= 100  # and no more read meanwhile than the batch in hand

        proxy.restore()

        async def caught_up() -> bool:
            return await pending(redis) == 0 and await count(engine, schema.fills) == 100

        await eventually(caught_up, "the batch written and acknowledged once back", proc)
        await eventually(db_ok, "health saying the database is back", proc)
        assert await count(engine, schema.orders) == 100
        events = [decode_as(f, Event) for _i, f in await redis.xrange(keys.EVENTS)]
        kinds = [e.kind for e in events if e.service == "ledger"]
        assert kinds == ["ledger.db_unreachable", "ledger.db_ok"]  # one each, for people
    finally:
        proxy.stop()
        await engine.dispose()


async def test_a_failing_migration_exits_saying_why_and_leaves_the_database_as_it_was(
    tmp_path: Path, clean_redis_url: str
) -> None:
    """A database someone already put a ``fills`` table in: migration 1 cannot create its
    tables, rolls back whole (no ``orders`` table left behind) and the ledger exits 1."""
    from sqlalchemy import inspect, text

    from shared.ledger.engine import create_engine

    url = f"sqlite:///{tmp_path / 'taken.db'}"
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE fills (x INTEGER)"))
    proc = ledger_process(tmp_path, clean_redis_url, url, "l4").start()
    assert proc.proc is not None
    code = await asyncio.to_thread(proc.proc.wait, 60)
    assert code == 1
    log = proc.log_text()
    assert "ledger.migration_failed" in log and "migration 1 (initial) failed" in log
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    await engine.dispose()
    assert sorted(tables) == ["fills"]  # neither orders nor schema_migrations remain
    proc.stop()


async def test_two_ledgers_share_the_stream_and_write_every_fill_once(
    tmp_path: Path, redis: Any, clean_redis_url: str, engine: AsyncEngine, database_url: str,
    processes: list[Any],
) -> None:  # fmt: skip
    await publish(redis, [report(n, fills=2) for n in range(3000)])
    procs = [
        ledger_process(
            tmp_path, clean_redis_url, database_url, name, BOTFLEET_LEDGER_BATCH="50"
        ).start()
        for name in ("la", "lb")
    ]
    processes.extend(procs)

    async def shares() -> list[int]:
        return [int((await health(redis, name)).get("entries", "0")) for name in ("la", "lb")]

    async def all_acked() -> bool:
        groups = await redis.xinfo_groups(keys.EXECUTIONS)
        done = bool(groups) and groups[0]["entries-read"] == 3000 and groups[0]["pending"] == 0
        return done and sum(await shares()) == 3000

    await eventually(all_acked, "every entry read and acknowledged", procs[0])
    assert await count(engine, schema.orders) == 3000
    assert await count(engine, schema.fills) == 6000
    assert all(s > 0 for s in await shares())  # both took part
