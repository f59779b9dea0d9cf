"""Execution gateway hot path: order intent -> order -> terminal execution report.

Prints (not a pass/fail test):
- paper mode: intents/s one gateway process sustains (20,000 intents pushed as fast as
  a pipelined producer can), and p50/p99 intent-to-report latency at 500 intents/s;
- live mode against the exchange simulator (a real process, HMAC-signed REST): intents/s
  at saturation and p50/p99 latency at 50 intents/s.

Latency is measured by this process: from the moment its XADD of the intent returned to
the moment its blocking XREAD on ``stream:executions`` returned the terminal report
(so it includes one Redis round trip of the reader). Everything runs against a private
redis-server. Run: ``.venv/bin/python bench/bench_gateway.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import keys
from shared.binance.rules import SymbolRules, rules_to_json
from shared.messages import ExecutionReport, OrderIntent, Side, decode, encode
from shared.redis import create_redis
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import RedisServer

BTC = SymbolRules(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.00001"),
    min_qty=Decimal("0.00001"),
    max_qty=Decimal("9000"),
    min_notional=Decimal("5"),
)


def _intent(tag: str, n: int) -> OrderIntent:
    return OrderIntent(
        intent_id=f"bench-{n % 50}:{tag}-{n}:buy",
        bot_id=f"bench-{n % 50}",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.0002"),
    )


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Reader:
    """Follows stream:executions and notes when each intent's final report arrives."""

    def __init__(self, redis_url: str, expected: int) -> None:
        self.redis = create_redis(redis_url)
        self.arrived: dict[str, float] = {}
        self.last_id = "$"
        self.expected = expected
        self.done = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)

    async def run(self) -> None:
        while True:
            reply = await self.redis.xread({keys.EXECUTIONS: self.last_id}, block=1000, count=1000)
            now = time.perf_counter()
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    report = decode(fields)
                    if isinstance(report, ExecutionReport) and report.final:
                        self.arrived[report.intent_id] = now
            if len(self.arrived) >= self.expected:
                self.done.set()


async def saturation(redis_url: str, tag: str, n: int, timeout: float) -> float:
    redis = create_redis(redis_url)
    reader = Reader(redis_url, n)
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(0.2)
    intents = [_intent(tag, i) for i in range(n)]
    start = time.perf_counter()
    for chunk in range(0, n, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for item in intents[chunk : chunk + 500]:
                pipe.xadd(keys.ORDER_INTENTS, encode(item))
            await pipe.execute()
    await reader.wait(timeout)
    elapsed = max(reader.arrived.values()) - start if reader.arrived else float("nan")
    task.cancel()
    done = len(reader.arrived)
    await redis.aclose()
    await reader.redis.aclose()
    if done < n:
        print(f"  (only {done}/{n} reports within {timeout}s)")
    return done / elapsed


async def paced(redis_url: str, tag: str, rate: float, seconds: float) -> tuple[float, float, int]:
    redis = create_redis(redis_url)
    total = int(rate * seconds)
    reader = Reader(redis_url, total)
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(0.2)
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        item = _intent(tag, i)
        await redis.xadd(keys.ORDER_INTENTS, encode(item))
        sent[item.intent_id] = time.perf_counter()
    await reader.wait(10)
    task.cancel()
    latencies = [(reader.arrived[k] - v) * 1000 for k, v in sent.items() if k in reader.arrived]
    await redis.aclose()
    await reader.redis.aclose()
    return _pct(latencies, 0.5), _pct(latencies, 0.99), len(latencies)


def _gateway(tmp: Path, env: dict[str, str], name: str) -> BotfleetProcess:
    import redis as sync_redis

    proc = BotfleetProcess(["gateway"], tmp / f"{name}.log", env).start()
    client = sync_redis.Redis.from_url(env["BOTFLEET_REDIS_URL"])
    try:
        proc.wait_for(
            lambda: client.exists(keys.health("gateway", env["BOTFLEET_INSTANCE"])) == 1,
            30,
            "gateway",
        )
    except BaseException:
        proc.kill()
        raise
    finally:
        client.close()
    return proc


def _reset(redis_url: str, price: str = "50000") -> None:
    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_url)
    client.flushall()
    client.hset(keys.EXCHANGE_SYMBOLS, "BTCUSDT", rules_to_json(BTC))
    client.set(keys.price("BTCUSDT"), price)
    client.close()


COMMON = {
    "BOTFLEET_LOG_LEVEL": "warning",
    "BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN": "0",
    "BOTFLEET_GATEWAY_FLEET_ORDERS_PER_MIN": "0",
    "BOTFLEET_GATEWAY_MAX_ORDER_NOTIONAL": "0",
    "BOTFLEET_PAPER_BALANCES": "USDT=1000000000",
}


def bench_paper(tmp: Path, redis_url: str, redis_pid: int) -> None:
    env = {**COMMON, "BOTFLEET_REDIS_URL": redis_url, "BOTFLEET_INSTANCE": "bench-paper"}
    _reset(redis_url)
    gw = _gateway(tmp, env, "paper")
    try:
        cpu_gw, cpu_redis = _cpu_s(gw.pid), _cpu_s(redis_pid)
        rate = asyncio.run(saturation(redis_url, "sat", 20_000, 60))
        gw_us = (_cpu_s(gw.pid) - cpu_gw) / 20_000 * 1e6
        redis_us = (_cpu_s(redis_pid) - cpu_redis) / 20_000 * 1e6
        print(f"paper: {rate:,.0f} intents/s at saturation (20,000 intents, one gateway process)")
        print(
            f"paper: CPU per intent: gateway {gw_us:.0f} us, redis-server {redis_us:.0f} us"
            f" (one gateway core alone: ~{1e6 / gw_us:,.0f} intents/s;"
            f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        p50, p99, n = asyncio.run(paced(redis_url, "paced", 500, 6))
        print(
            f"paper: intent->report latency at 500 intents/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({n} intents)"
        )
    finally:
        gw.stop()


def bench_live(tmp: Path, redis_url: str) -> None:
    import httpx
    import redis as sync_redis

    from tests.support.sim import start_sim

    sim = start_sim(
        tmp / "sim",
        speed=1.0,
        extra_args=["--weight-limit", "1000000", "--orders-per-10s", "1000000", "--orders-per-day", "100000000",
                    "--balances", "USDT=1000000000,BTC=1000"],
    )  # fmt: skip
    try:
        price = httpx.get(
            sim.rest_url + "/api/v3/ticker/price", params={"symbol": "BTCUSDT"}
        ).json()["price"]
        _reset(redis_url, price)
        from tests.integration.gateway.live_support import seed_from_sim

        client = sync_redis.Redis.from_url(redis_url)
        seed_from_sim(client, sim)
        client.close()
        env = {
            **COMMON,
            **sim.env(),
            "BOTFLEET_REDIS_URL": redis_url,
            "BOTFLEET_INSTANCE": "bench-live",
            "BOTFLEET_TRADING_MODE": "live",
            "BOTFLEET_GATEWAY_WEIGHT_LIMIT": "1000000",
        }
        gw = _gateway(tmp, env, "live")
        try:
            rate = asyncio.run(saturation(redis_url, "lsat", 1_000, 60))
            print(
                f"live (simulator, HMAC REST): {rate:,.0f} intents/s at saturation (1,000 intents)"
            )
            p50, p99, n = asyncio.run(paced(redis_url, "lpaced", 50, 4))
            print(
                f"live (simulator): intent->report latency at 50 intents/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({n} intents)"
            )
        finally:
            gw.stop()
    finally:
        sim.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = RedisServer(tmp / "redis").start()
        try:
            assert server.proc is not None
            bench_paper(tmp, server.url, server.proc.pid)
            bench_live(tmp, server.url)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
