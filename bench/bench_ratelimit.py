"""The fleet-wide request budget's overhead per REST request (``shared/ratelimit.py``).

Every REST call of ingestion and of the gateways first reserves its weight in Redis
(``WeightBudget.try_reserve``: one EVALSHA) and afterwards corrects the minute's counter
from ``X-MBX-USED-WEIGHT-1M`` (``correct_from_header``: one more EVALSHA); every order
also counts in the ORDERS windows (``OrderBudget.try_reserve``: one EVALSHA over the 10 s
and day counters). This prints, against a private redis-server on loopback TCP:

- p50 / p99 µs per request of reserve + correct (what a REST call pays), of reserve
  alone, of the order-count reserve, and of a bare ``PING`` (the round-trip floor), with
  1 client and with 4 concurrent clients (separate processes, each its own connection
  and event loop, as separate services are);
- requests/s of reserve alone, all clients together.

The budget's limit is set far above the load so that nothing ever waits: this measures
the bookkeeping, not the rate limiting. Run: ``.venv/bin/python bench/bench_ratelimit.py``
(about 30 s).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.ratelimit import OrderBudget, RateLimitRule, WeightBudget  # noqa: E402
from shared.redis import create_redis  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

REQUESTS = 10_000  # per client and per operation
WARMUP = 500
CLIENTS = (1, 4)
HUGE = 10**12  # a limit nothing reaches: no reservation ever waits
ORDER_RULES = [
    RateLimitRule("ORDERS", "SECOND", 10, HUGE),
    RateLimitRule("ORDERS", "DAY", 1, HUGE),
]
OPERATIONS = ("reserve+correct", "reserve", "order reserve", "ping")


async def _measure(url: str, operation: str, n: int) -> tuple[list[float], float]:
    """Latencies (µs) of ``n`` sequential operations and the wall time they took (s)."""
    redis = create_redis(url)
    weight = WeightBudget(redis, limit_per_minute=HUGE, margin=0.1)
    orders = OrderBudget(redis, ORDER_RULES, margin=0.1)
    used = 0

    async def reserve_and_correct() -> None:
        nonlocal used
        await weight.try_reserve(2)
        used += 2
        await weight.correct_from_header(used)

    async def reserve() -> None:
        await weight.try_reserve(2)

    async def order_reserve() -> None:
        await orders.try_reserve()

    async def ping() -> None:
        await redis.ping()

    call: Callable[[], Awaitable[None]] = {
        "reserve+correct": reserve_and_correct,
        "reserve": reserve,
        "order reserve": order_reserve,
        "ping": ping,
    }[operation]
    for _ in range(WARMUP):  # scripts loaded, connection open, caches warm
        await call()
    samples: list[float] = []
    clock = time.perf_counter
    started = clock()
    for _ in range(n):
        t0 = clock()
        await call()
        samples.append((clock() - t0) * 1e6)
    elapsed = clock() - started
    await redis.aclose()
    return samples, elapsed


def _worker(url: str, operation: str, n: int, barrier: Any, out: Any) -> None:
    barrier.wait()
    out.put(asyncio.run(_measure(url, operation, n)))


def run(url: str, operation: str, clients: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(clients)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, operation, REQUESTS, barrier, out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    samples = sorted(s for r, _ in results for s in r)
    wall = max(elapsed for _, elapsed in results)
    return {
        "p50": statistics.median(samples),
        "p99": samples[int(len(samples) * 0.99) - 1],
        "per_s": len(samples) / wall,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            print(
                f"fleet budget overhead per request, private redis-server on loopback TCP; "
                f"{REQUESTS:,} requests per client; load average "
                f"{os.getloadavg()[0]:.2f} at start; {os.cpu_count()} cores"
            )
            print(f"{'operation':<18}{'clients':>8}{'p50 µs':>10}{'p99 µs':>10}{'req/s':>12}")
            for clients in CLIENTS:
                for operation in OPERATIONS:
                    figures = run(server.url, operation, clients)
                    print(
                        f"{operation:<18}{clients:>8}{figures['p50']:>10.0f}"
                        f"{figures['p99']:>10.0f}{figures['per_s']:>12,.0f}"
                    )
            print(f"load average {os.getloadavg()[0]:.2f} at the end")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
