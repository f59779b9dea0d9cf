"""Benchmark of the trade ledger on a private PostgreSQL (initdb in a temporary
directory, as the tests do) and a private redis-server.

1. Fills/s written by ``botfleet ledger`` as a real process: N execution reports (two
   fills each) waiting in ``stream:executions``; the clock runs from the ledger's first
   batch to its last acknowledgement (read, decode, one transaction per batch, XACK).
2. Fills/s of the writer alone (in-process, batches of 1,000 reports): the SQL side.
3. ``GET /api/v1/trades`` p50/p99 on ``botfleet api`` (uvicorn) over a million fills
   (bulk-loaded with ``generate_series``): the newest page, one bot, one symbol in a
   time range, a page deep in the cursor chain, and a CSV export of 5,000 rows.

Run: ``.venv/bin/python bench/bench_ledger.py [reports] [api_rows]`` (defaults 50,000 and
1,000,000).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx
import redis as sync_redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.ledger.migrations import migrate
from services.ledger.writer import Batch, LedgerWriter
from shared import keys
from shared.bots import client_order_id
from shared.ledger.engine import create_engine
from shared.messages import ExecutionReport, ExecutionStatus, Fill, Side, encode
from tests.support.postgres import PostgresServer
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import RedisServer, free_port

TOKEN = "bench-token-0123456789abcdef"
T0 = 1_700_000_000_000


def report(n: int) -> ExecutionReport:
    intent = f"bench-{n % 50}:c{n}:buy"
    fills = tuple(
        Fill(
            price=Decimal("43210.12345678"),
            qty=Decimal("0.00123457"),
            commission=Decimal("0.00000123"),
            commission_asset="BNB",
            trade_id=n * 2 + k + 1,
        )
        for k in range(2)
    )
    return ExecutionReport(
        intent_id=intent,
        client_order_id=client_order_id(intent),
        bot_id=f"bench-{n % 50}",
        symbol="BTCUSDT",
        side=Side.BUY,
        status=ExecutionStatus.FILLED,
        final=True,
        executed_qty=Decimal("0.00246914"),
        cumulative_quote=Decimal("106.6926"),
        avg_price=Decimal("43210.12345678"),
        commission=Decimal("0.00000246"),
        commission_asset="BNB",
        fills=fills,
        exchange_order_id=n,
        mode="live",
        ts=T0 + n,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (Linux /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(pg: PostgresServer) -> list[int]:
    """The postmaster and its backends (children)."""
    assert pg.proc is not None
    out = [pg.proc.pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pg.proc.pid:
            out.append(int(stat.parent.name))
    return out


def bench_process(
    redis_url: str, db_url: str, workdir: Path, reports: int, pg: PostgresServer
) -> None:
    r = sync_redis.Redis.from_url(redis_url)
    pipe = r.pipeline(transaction=False)
    for n in range(reports):
        pipe.xadd(keys.EXECUTIONS, encode(report(n)))
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    proc = BotfleetProcess(
        ["ledger", "--database-url", db_url, "--instance", "bench"],
        workdir / "ledger.log",
        {"BOTFLEET_REDIS_URL": redis_url, "BOTFLEET_LOG_LEVEL": "warning"},
    ).start()
    try:
        health = keys.health("ledger", "bench")
        proc.wait_for(lambda: int(r.hget(health, "batches") or 0) > 0, 60, "first batch")
        started = time.perf_counter()
        first_entries = int(r.hget(health, "entries") or 0)
        pids = postgres_pids(pg)
        cpu0 = cpu_seconds([proc.pid]), cpu_seconds(pids)

        def done() -> bool:
            (group,) = r.xinfo_groups(keys.EXECUTIONS)
            return int(group["pending"]) == 0 and int(group["entries-read"]) == reports

        proc.wait_for(done, 600, "every report acknowledged")
        elapsed = time.perf_counter() - started
        fills = (reports - first_entries) * 2
        ledger_cpu = cpu_seconds([proc.pid]) - cpu0[0]
        pg_cpu = cpu_seconds(postgres_pids(pg)) - cpu0[1]
        print(
            f"botfleet ledger (process): {reports:,} reports / {reports * 2:,} fills; "
            f"{fills / elapsed:,.0f} fills/s ({(reports - first_entries) / elapsed:,.0f} "
            f"reports/s) read, written to PostgreSQL, acknowledged"
        )
        print(
            f"  CPU used: ledger process {ledger_cpu:.1f} s, PostgreSQL {pg_cpu:.1f} s "
            f"= {fills / max(ledger_cpu + pg_cpu, 1e-9):,.0f} fills per CPU-second "
            f"(the rate on otherwise idle cores, the two sharing one core: "
            f"{fills / max(ledger_cpu + pg_cpu, ledger_cpu, pg_cpu, 1e-9):,.0f}/s; on two: "
            f"{fills / max((ledger_cpu + pg_cpu) / 2, ledger_cpu, pg_cpu, 1e-9):,.0f}/s)"
        )
    finally:
        proc.stop()
        r.close()


async def bench_writer(db_url: str, reports: int) -> None:
    engine = create_engine(db_url)
    writer = LedgerWriter(engine)
    batches = []
    for start in range(0, reports, 1000):
        batch = Batch()
        for n in range(start, min(reports, start + 1000)):
            batch.add_report(report(n + 10_000_000), f"{n}-0")
        batches.append(batch)
    started = time.perf_counter()
    for batch in batches:
        await writer.write(batch)
    elapsed = time.perf_counter() - started
    print(
        f"LedgerWriter alone: {reports * 2 / elapsed:,.0f} fills/s "
        f"(batches of 1,000 reports, one transaction each)"
    )
    await engine.dispose()


def bulk_load(pg: PostgresServer, database: str, rows: int) -> float:
    started = time.perf_counter()
    pg.psql(
        f"""
        INSERT INTO fills (fill_key, intent_id, client_order_id, bot_id, symbol, side, mode,
          trade_id, exchange_order_id, price, qty, quote_qty, commission, commission_asset,
          is_exit, ts)
        SELECT 'live:' || s.sym || ':' || g, 'bot-' || (g % 1000) || ':c' || g || ':buy',
          'bf-' || md5(g::text), 'bot-' || (g % 1000), s.sym,
          CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END, 'live', g, g,
          43210.12345678 + (g % 1000) / 100.0, 0.00123457, 53.3460, 0.00000123, 'BNB',
          false, {T0} + g * 30000
        FROM generate_series(1::bigint, {rows}::bigint) AS g,
          LATERAL (SELECT (ARRAY['BTCUSDT','ETHUSDT','BNBUSDT','SOLUSDT'])[1 + g % 4] AS sym) s;
        ANALYZE fills;
        """,
        database,
    )
    return time.perf_counter() - started


def bench_api(redis_url: str, db_url: str, workdir: Path, rows: int) -> None:
    port = free_port()
    proc = BotfleetProcess(
        ["api", "--port", str(port)],
        workdir / "api.log",
        {
            "BOTFLEET_REDIS_URL": redis_url,
            "BOTFLEET_API_TOKEN": TOKEN,
            "BOTFLEET_LEDGER_DATABASE_URL": db_url,
            "BOTFLEET_LOG_LEVEL": "warning",
        },
    ).start()
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(base + "/healthz")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            deep = None
            page = c.get("/api/v1/trades", params={"limit": 1000}).json()
            depth = max(1, min(200, rows // 2000))
            for _ in range(depth):  # up to 200 pages down: a cursor 200,000 rows deep
                page = c.get(
                    "/api/v1/trades", params={"limit": 1000, "cursor": page["next_cursor"]}
                ).json()
            deep = page["next_cursor"]
            mid = T0 + rows * 15_000
            cases = {
                "newest 100": {"limit": 100},
                "one bot, 100": {"bot_id": "bot-7", "limit": 100},
                "symbol+side+1 day": {
                    "symbol": "ETHUSDT", "side": "SELL", "start": mid, "end": mid + 86_400_000,
                    "limit": 100,
                },
                f"cursor {depth}k deep": {"cursor": deep, "limit": 100},
                # g % 4 == 0 is BTCUSDT and g < 20,000: the oldest 5,000 BTCUSDT fills
                "csv 5,000 rows": {"symbol": "BTCUSDT", "end": T0 + 20_000 * 30_000,
                                   "format": "csv"},
            }  # fmt: skip
            for name, params in cases.items():
                times = []
                for i in range(220):
                    t = time.perf_counter()
                    response = c.get("/api/v1/trades", params=params)
                    response.raise_for_status()
                    if i >= 20:  # warm-up left out
                        times.append((time.perf_counter() - t) * 1000)
                print(
                    f"GET /api/v1/trades {name:<18} ({rows:,} rows): "
                    f"p50 {statistics.median(times):.1f} ms  p99 {pct(times, 0.99):.1f} ms"
                )
    finally:
        proc.stop()


def main() -> None:
    reports = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    api_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    workdir = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    redis_server = RedisServer(workdir / "redis").start()
    pg = PostgresServer().start()
    try:
        db_url = pg.create_database()
        bench_process(redis_server.url, db_url, workdir, reports, pg)
        asyncio.run(bench_writer(db_url, reports))

        api_db = pg.create_database()
        asyncio.run(_migrate(api_db))
        loaded = bulk_load(pg, api_db.rsplit("/", 1)[1], api_rows)
        print(f"bulk-loaded {api_rows:,} fills in {loaded:.1f} s (generate_series)")
        bench_api(redis_server.url, api_db, workdir, api_rows)
    finally:
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        pg.stop()
        redis_server.stop()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()


if __name__ == "__main__":
    main()
