"""Benchmark of ``botfleet api`` as a real process (uvicorn) on a private redis-server.

1. ``GET /api/v1/bots/{id}`` under ``wrk -t2 -c32`` (Debian package ``wrk``), side by
   side with a minimal Litestar app returning a document of the same size under the same
   uvicorn (httptools, uvloop, no access log): both requests/s and their ratio.
2. The fleet views at 10,000 bots (each with a position and stats as a runner writes
   them): ``GET /api/v1/bots`` pages of 100 and 1,000, sorted and filtered on the
   server, p50/p99.
3. A start/stop round trip (POST start + POST stop, no wait).

Start needs live runner and gateway heartbeats; this benchmark writes them itself (it
measures the API, not the runners). Run: ``.venv/bin/python bench/bench_api.py``
(``--bots N`` for another fleet size, ``--seconds S`` per wrk run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis as sync_redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.api.fleet import config_json
from services.api.ids import new_id
from services.api.repository import Repository
from shared import keys
from shared.binance.rules import SymbolRules, rules_to_json
from shared.redis import create_redis, now_ms
from shared.strategies.accounting import BotBook
from shared.strategies.config import BotConfig
from tests.support.processes import BotfleetProcess, base_env
from tests.support.redis_server import RedisServer, free_port

TOKEN = "bench-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
STRATEGIES = ("rsi", "ema_cross")

# The minimal app: one route returning a fixed JSON document (the bot's, as served by
# the API), under uvicorn configured as services/api/main.py configures it.
MINIMAL_APP = """
import sys, uvicorn, uvloop
from litestar import Litestar, get, Response
body = open(sys.argv[2], "rb").read()
@get("/api/v1/bots/{bot_id:str}")
async def one(bot_id: str) -> Response[bytes]:
    return Response(body, media_type="application/json")
app = Litestar([one])
uvloop.install()
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools",
            access_log=False, log_config=None, lifespan="on")
"""


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def timed(client: httpx.Client, n: int, path: str, params: dict[str, Any]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        out.append(time.perf_counter() - start)
    return out


def wrk(url: str, seconds: int, headers: dict[str, str]) -> float:
    """Requests/s of ``wrk -t2 -c32`` on ``url`` (after a 1 s warm-up run)."""
    args = ["wrk", "-t2", "-c32", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    subprocess.run([*args, "-d1s", url], capture_output=True, check=True)
    done = subprocess.run([*args, f"-d{seconds}s", url], capture_output=True, text=True)
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None or "Non-2xx" in done.stdout:
        raise RuntimeError(f"wrk failed on {url}:\n{done.stdout}{done.stderr}")
    return float(match.group(1))


async def create_bots(redis_url: str, n: int) -> list[str]:
    """``n`` bots, each on a symbol and strategy in turn, created by the API's own
    repository (what ``POST /api/v1/bots`` writes, without n HTTP requests)."""
    redis = create_redis(redis_url)
    repo = Repository(redis)
    sem = asyncio.Semaphore(64)
    ids: list[str] = []

    async def one(i: int) -> None:
        config = BotConfig.model_validate(
            {
                "name": f"bench {i}",
                "symbol": SYMBOLS[i % len(SYMBOLS)],
                "interval": "1m",
                "strategy": STRATEGIES[i % len(STRATEGIES)],
                "quote_allocation": str(100 + i % 900),
            }
        )
        created = now_ms()
        bot_id = new_id(created)
        async with sem:
            await repo.create_bot(bot_id, config.name, config_json(config), created)
        ids.append(bot_id)

    await asyncio.gather(*(one(i) for i in range(n)))
    await redis.aclose()
    return ids


def give_books(r: sync_redis.Redis, ids: list[str]) -> None:
    """A position and stats per bot as a runner writes them (every third bot holds)."""
    pipe = r.pipeline(transaction=False)
    for i, bot_id in enumerate(ids):
        book = BotBook(
            allocation=Decimal(100 + i % 900),
            base_asset="BTC",
            quote_asset="USDT",
            symbol="BTCUSDT",
        )
        book.realized_pnl = Decimal(i % 37) - Decimal(18)
        if i % 3 == 0:
            book.qty, book.cost_basis = Decimal("0.001"), Decimal("50")
            book.mark_price = Decimal(50_000 + i)
        pipe.hset(keys.bot_position(bot_id), mapping=book.to_position_hash())
        pipe.hset(keys.bot_stats(bot_id), mapping=book.to_stats_hash())
        if i % 5 == 0:
            pipe.hset(keys.bot(bot_id), "status", "running")
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bots", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=5)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_api: needs wrk (Debian package: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        api = minimal = None
        try:
            r = sync_redis.Redis.from_url(server.url)
            for symbol in SYMBOLS:
                rules = SymbolRules(symbol=symbol, base_asset=symbol[:-4], quote_asset="USDT")
                r.hset(keys.EXCHANGE_SYMBOLS, symbol, rules_to_json(rules))
            port = free_port()
            api = BotfleetProcess(
                ["api", "--port", str(port)], Path(tmp) / "api.log",
                {"BOTFLEET_REDIS_URL": server.url, "BOTFLEET_API_TOKEN": TOKEN, "BOTFLEET_LOG_LEVEL": "warning"},
            ).start()  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            api.wait_http(base + "/healthz")
            ids = asyncio.run(create_bots(server.url, options.bots))
            give_books(r, ids)
            bot = ids[0]
            with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
                document = client.get(f"/api/v1/bots/{bot}").content
                views = {
                    "limit=100": {"limit": 100},
                    "limit=1000": {"limit": 1000},
                    "limit=100 sort=-realized_pnl": {"limit": 100, "sort": "-realized_pnl"},
                    "limit=100 status=running symbol=ETHUSDT": {
                        "limit": 100,
                        "status": "running",
                        "symbol": "ETHUSDT",
                    },
                    "limit=100 strategy=rsi sort=name": {
                        "limit": 100,
                        "strategy": "rsi",
                        "sort": "name",
                    },
                }
                timings = {}
                for label, params in views.items():
                    client.get("/api/v1/bots", params=params).raise_for_status()
                    timings[label] = timed(client, 30, "/api/v1/bots", params)
                beat_at = int(time.time() * 1000) + 3_600_000  # live for the whole run
                for service in ("runner", "gateway"):
                    r.hset(keys.health(service, "bench"), mapping={"ts": str(beat_at)})
                    r.zadd(keys.HEALTH_INDEX, {keys.health_member(service, "bench"): beat_at})
                trips = []
                for _ in range(100):
                    t0 = time.perf_counter()
                    assert client.post(f"/api/v1/bots/{bot}/start").status_code == 202
                    assert client.post(f"/api/v1/bots/{bot}/stop").status_code == 202
                    trips.append(time.perf_counter() - t0)

            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(document)
            min_port = free_port()
            minimal = subprocess.Popen(
                [sys.executable, "-c", MINIMAL_APP, str(min_port), str(body_file)],
                env=base_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            api.wait_http(f"http://127.0.0.1:{min_port}/api/v1/bots/{bot}")
            ours = wrk(f"{base}/api/v1/bots/{bot}", options.seconds, AUTH)
            theirs = wrk(f"http://127.0.0.1:{min_port}/api/v1/bots/{bot}", options.seconds, {})

            n = options.bots
            for label, samples in timings.items():
                print(
                    f"api: GET /api/v1/bots {label} of {n}: "
                    f"p50 {pct(samples, 0.5):.2f} ms  p99 {pct(samples, 0.99):.2f} ms"
                )
            print(
                f"api: start+stop round trip: p50 {pct(trips, 0.5):.2f} ms  "
                f"p99 {pct(trips, 0.99):.2f} ms  (mean {statistics.mean(trips) * 1000:.2f} ms)"
            )
            print(
                f"api: GET /api/v1/bots/{{id}} ({len(document)} bytes), wrk -t2 -c32 "
                f"-d{options.seconds}s: {ours:.0f} requests/s"
            )
            print(f"api: minimal Litestar, same document and uvicorn: {theirs:.0f} requests/s")
            print(f"api: ratio {ours / theirs:.2f} (target >= 0.5)")
            print(json.dumps({"rps": round(ours), "minimal_rps": round(theirs)}))
            r.close()
        finally:
            if minimal is not None:
                minimal.terminate()
                minimal.wait(10)
            if api is not None:
                api.stop()
            server.stop()


if __name__ == "__main__":
    main()
