"""Benchmark of ``botfleet api`` as a real process (uvicorn) on a private redis-server.

Prints p50/p99 of GET /api/v1/bots (first page of 100, and all 1,000) with 1,000 bots,
p50/p99 of a start/stop round trip (POST start + POST stop, no wait), and requests/s
of a read endpoint (GET /api/v1/bots/{id}) with 32 concurrent clients for 5 s.

Start needs live runner and gateway heartbeats; this benchmark writes them itself (it
measures the API, not the runners). Run: ``.venv/bin/python bench/bench_api.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis as sync_redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import keys
from shared.binance.rules import SymbolRules, rules_to_json
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import RedisServer, free_port

TOKEN = "bench-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOTS = 1000


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def timed(client: httpx.Client, n: int, call: object) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call(client)  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


async def throughput(base: str, bot_id: str, seconds: float = 5.0, concurrency: int = 32) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await client.get(f"/api/v1/bots/{bot_id}")
                assert response.status_code == 200
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        api = None
        try:
            r = sync_redis.Redis.from_url(server.url)
            r.hset(
                keys.EXCHANGE_SYMBOLS,
                "BTCUSDT",
                rules_to_json(SymbolRules(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT")),
            )
            port = free_port()
            api = BotfleetProcess(
                ["api", "--port", str(port)], Path(tmp) / "api.log",
                {"BOTFLEET_REDIS_URL": server.url, "BOTFLEET_API_TOKEN": TOKEN, "BOTFLEET_LOG_LEVEL": "warning"},
            ).start()  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            api.wait_http(base + "/healthz")
            config = {
                "name": "bench",
                "symbol": "BTCUSDT",
                "interval": "1m",
                "strategy": "rsi",
                "quote_allocation": "100",
            }
            with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
                start = time.perf_counter()
                ids = [  # names are unique (409 on a second "bench")
                    client.post("/api/v1/bots", json={**config, "name": f"bench {i}"}).json()["id"]
                    for i in range(BOTS)
                ]
                create_s = time.perf_counter() - start
                for _ in range(5):
                    client.get("/api/v1/bots")
                page = timed(
                    client,
                    200,
                    lambda c: c.get("/api/v1/bots", params={"limit": 100}).raise_for_status(),
                )
                full = timed(
                    client,
                    50,
                    lambda c: c.get("/api/v1/bots", params={"limit": 1000}).raise_for_status(),
                )
                beat_at = int(time.time() * 1000) + 3_600_000  # live for the whole run
                for service in ("runner", "gateway"):
                    r.hset(keys.health(service, "bench"), mapping={"ts": str(beat_at)})
                    r.zadd(keys.HEALTH_INDEX, {keys.health_member(service, "bench"): beat_at})
                bot = ids[0]

                def round_trip(c: httpx.Client) -> None:
                    assert c.post(f"/api/v1/bots/{bot}/start").status_code == 202
                    assert c.post(f"/api/v1/bots/{bot}/stop").status_code == 202

                trips = timed(client, 200, round_trip)
            rps = asyncio.run(throughput(base, bot))
            print(f"api: created {BOTS} bots in {create_s:.2f}s ({BOTS / create_s:.0f}/s)")
            print(
                f"api: GET /api/v1/bots limit=100 of {BOTS}: p50 {pct(page, 0.5):.2f} ms  p99 {pct(page, 0.99):.2f} ms"
            )
            print(
                f"api: GET /api/v1/bots limit=1000 of {BOTS}: p50 {pct(full, 0.5):.2f} ms  p99 {pct(full, 0.99):.2f} ms"
            )
            print(
                f"api: start+stop round trip: p50 {pct(trips, 0.5):.2f} ms  p99 {pct(trips, 0.99):.2f} ms  (mean {statistics.mean(trips) * 1000:.2f} ms)"
            )
            print(f"api: GET /api/v1/bots/{{id}} with 32 clients: {rps:.0f} requests/s")
            r.close()
        finally:
            if api is not None:
                api.stop()
            server.stop()


if __name__ == "__main__":
    main()
