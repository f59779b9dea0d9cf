"""Execution gateway hot path: order intent -> order -> terminal execution report.

Prints (not a pass/fail test):
- paper mode: intents/s one gateway process sustains (``RUNS`` runs of 10,000 intents
  pushed as fast as a pipelined producer can; the median and the range are printed), the
  CPU each intent costs the gateway process and redis-server over those runs, and p50/p99
  intent-to-report latency at 500 intents/s (median of ``RUNS`` runs of 4 s);
- live mode against the exchange simulator (a real process, HMAC-signed REST): intents/s
  at saturation and p50/p99 latency at 50 intents/s.

The load generator is a separate process (``--produce``), so it does not share an
interpreter (or a core's time slice) with the reader; this process only follows
``stream:executions``. Latency runs from the moment the producer's XADD of the intent
returned to the moment this process's blocking XREAD returned the terminal report (both
on the machine's monotonic clock, so it includes one Redis round trip of the reader).
Everything runs against a private redis-server. The machine's load average is printed
next to the figures: on a shared 2-core machine, the producer, the reader, redis-server
and the gateway compete for the same cores, and other work on the machine shows up in
the spread between runs. Run: ``.venv/bin/python bench/bench_gateway.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared import keys  # noqa: E402
from shared.binance.rules import SymbolRules, rules_to_json  # noqa: E402
from shared.messages import ExecutionReport, OrderIntent, Side, decode, encode  # noqa: E402
from tests.support.processes import BotfleetProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

RUNS = 5
SATURATION_INTENTS = 10_000
PACED_RATE, PACED_SECONDS = 500, 4.0

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


# --- the load generator (its own process) ---------------------------------------------
def produce(redis_url: str, tag: str, n: int, rate: float) -> None:
    """XADD ``n`` intents (pipelined 500 at a time if ``rate`` is 0, else one every
    1/rate s); prints JSON {"start": t, "sent": {intent id: t}} on the monotonic clock."""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_url)
    intents = [(item.intent_id, encode(item)) for item in (_intent(tag, i) for i in range(n))]
    client.ping()
    sent: dict[str, float] = {}
    start = time.perf_counter()
    if rate <= 0:
        for chunk in range(0, n, 500):
            pipe = client.pipeline(transaction=False)
            for _id, fields in intents[chunk : chunk + 500]:
                pipe.xadd(keys.ORDER_INTENTS, fields)  # type: ignore[arg-type]
            pipe.execute()
    else:
        for i, (intent_id, fields) in enumerate(intents):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            client.xadd(keys.ORDER_INTENTS, fields)  # type: ignore[arg-type]
            sent[intent_id] = time.perf_counter()
    client.close()
    print(json.dumps({"start": start, "sent": sent}))


# --- the measuring side ------------------------------------------------------------------
def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run(
    redis_url: str, tag: str, n: int, rate: float, timeout: float
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Start the producer, follow stream:executions until every intent has its final
    report (or ``timeout``); returns (producer start, sent times, arrival times)."""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_url)
    last = (
        client.xinfo_stream(keys.EXECUTIONS)["last-generated-id"]
        if client.exists(keys.EXECUTIONS)
        else "0-0"
    )
    producer = subprocess.Popen(
        [sys.executable, __file__, "--produce", redis_url, tag, str(n), str(rate)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(arrived) < n and time.monotonic() < deadline:
        reply = client.xread({keys.EXECUTIONS: last}, block=500, count=1000)
        now = time.perf_counter()
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id
                report = decode(fields)
                if isinstance(report, ExecutionReport) and report.final:
                    arrived[report.intent_id] = now
    out, _ = producer.communicate(timeout=timeout)
    client.close()
    result = json.loads(out)
    if len(arrived) < n:
        print(f"  (only {len(arrived)}/{n} reports within {timeout}s)")
    return result["start"], result["sent"], arrived


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


def _spread(values: list[float], fmt: str) -> str:
    return f"median {fmt.format(statistics.median(values))} (runs: {', '.join(fmt.format(v) for v in values)})"


def bench_paper(tmp: Path, redis_url: str, redis_pid: int) -> None:
    env = {**COMMON, "BOTFLEET_REDIS_URL": redis_url, "BOTFLEET_INSTANCE": "bench-paper"}
    _reset(redis_url)
    gw = _gateway(tmp, env, "paper")
    try:
        _paper_figures(redis_url, [gw], redis_pid, "one gateway process")
    finally:
        gw.stop()


def bench_paper_two(tmp: Path, redis_url: str, redis_pid: int) -> None:
    """The same figures with TWO gateway processes in the one consumer group."""
    _reset(redis_url)
    gws = []
    try:
        for name in ("bench-paper-a", "bench-paper-b"):
            env = {**COMMON, "BOTFLEET_REDIS_URL": redis_url, "BOTFLEET_INSTANCE": name}
            gws.append(_gateway(tmp, env, name))
        _paper_figures(redis_url, gws, redis_pid, "two gateway processes")
    finally:
        for gw in gws:
            gw.stop()


def _paper_figures(redis_url: str, gws: list[BotfleetProcess], redis_pid: int, label: str) -> None:
    _run(redis_url, f"warm{len(gws)}", 1000, 0, 30)
    rates: list[float] = []
    gw_cpu = redis_cpu = 0.0
    tag = f"{len(gws)}gw"
    for r in range(RUNS):
        cpu_gw, cpu_redis = sum(_cpu_s(gw.pid) for gw in gws), _cpu_s(redis_pid)
        start, _sent, arrived = _run(redis_url, f"sat{r}{tag}", SATURATION_INTENTS, 0, 60)
        gw_cpu += sum(_cpu_s(gw.pid) for gw in gws) - cpu_gw
        redis_cpu += _cpu_s(redis_pid) - cpu_redis
        rates.append(len(arrived) / (max(arrived.values()) - start) if arrived else 0.0)
    total = RUNS * SATURATION_INTENTS
    gw_us, redis_us = gw_cpu / total * 1e6, redis_cpu / total * 1e6
    print(
        f"paper: intents/s at saturation ({RUNS} runs of {SATURATION_INTENTS:,}, {label}):"
        f" {_spread(rates, '{:,.0f}')}"
    )
    print(
        f"paper ({label}): CPU per intent: gateway {gw_us:.0f} us, redis-server {redis_us:.0f} us"
        f" (one free core for the gateway alone: ~{1e6 / gw_us:,.0f} intents/s;"
        f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    p50s: list[float] = []
    p99s: list[float] = []
    for r in range(RUNS):
        _start, sent, arrived = _run(
            redis_url, f"paced{r}{tag}", int(PACED_RATE * PACED_SECONDS), PACED_RATE, 30
        )
        lat = [(arrived[k] - v) * 1000 for k, v in sent.items() if k in arrived]
        p50s.append(_pct(lat, 0.5))
        p99s.append(_pct(lat, 0.99))
    print(
        f"paper ({label}): intent->report latency at {PACED_RATE} intents/s ({RUNS} runs of"
        f" {PACED_SECONDS:.0f} s): p50 {_spread(p50s, '{:.2f}')} ms;"
        f" p99 {_spread(p99s, '{:.2f}')} ms"
    )


def bench_live(tmp: Path, redis_url: str) -> None:
    import httpx
    import redis as sync_redis

    from tests.integration.gateway.live_support import seed_from_sim
    from tests.support.sim import start_sim

    sim = start_sim(
        tmp / "sim",
        speed=1.0,
        extra_args=["--weight-limit", "1000000", "--orders-per-10s", "1000000", "--orders-per-day", "100000000",
                    "--balances", "USDT=1000000000,BTC=1000"],
    )  # fmt: skip
    try:
        price = httpx.get(
            sim.rest_url + "/api/v3/ticker/price", params={"symbol": "BTCUSDT"}, timeout=10
        ).json()["price"]
        _reset(redis_url, price)
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
            start, _sent, arrived = _run(redis_url, "lsat", 1_000, 0, 60)
            rate = len(arrived) / (max(arrived.values()) - start) if arrived else 0.0
            print(
                f"live (simulator, HMAC REST): {rate:,.0f} intents/s at saturation (1,000 intents)"
            )
            _start, sent, arrived = _run(redis_url, "lpaced", 200, 50, 30)
            lat = [(arrived[k] - v) * 1000 for k, v in sent.items() if k in arrived]
            print(
                f"live (simulator): intent->report latency at 50 intents/s: p50"
                f" {_pct(lat, 0.5):.2f} ms, p99 {_pct(lat, 0.99):.2f} ms ({len(lat)} intents)"
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
            bench_paper_two(tmp, server.url, server.proc.pid)
            if "--paper-only" not in sys.argv:
                bench_live(tmp, server.url)
        finally:
            server.stop()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--produce":
        produce(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
