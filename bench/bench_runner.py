"""Runner hot path: closed candle -> order intent, 10,000 bots over 200 symbols on one
runner process (``botfleet runner`` as a subprocess, private redis-server).

Bots: 50 per symbol, RSI with periods 5/7/9/11/14 (10 bots each, so each symbol has
five shared strategy computations). Each round sends a "down 8" candle to every symbol
(HOLD) and then a burst of 200 "up 4" candles at once, which makes the RSI cross back
above 30 for a growing share of the bots (from 40% to 100% of them): every such bot
emits an intent. The bench plays the gateway by rejecting every intent (a final
REJECTED report), so the bots are flat and free for the next round.

Each burst's intent count is checked against the count the strategy's own vectorised
code predicts (computed here), so a burst that loses or doubles an intent fails the
bench instead of flattering it.

Figures:
- burst: first burst candle appended -> last resulting intent appended (Redis stream
  ids, server clock, ms resolution); each burst with its intent count, p50 / p99 / max.
- CPU of the runner process and of redis-server during a 10,000-intent burst, and
  Redis' own per-command figures (INFO commandstats): where the time goes.
- single: one symbol's "up" candle appended -> first intent read by a blocking XREAD
  (perf_counter, includes one Redis round trip); p50 / p90.
- start: 10,000 START commands (desired ``running`` and a command per bot, as the API
  writes them) -> all 10,000 bots ``running``, on a runner whose reconcile pass does not
  come meanwhile; that runner then stops and the bench's runner adopts the bots.
- the machine's load average, since the runner, redis-server and the bench share it.

Knobs (environment): ``BENCH_ROUNDS`` (8), ``BENCH_SINGLES`` (40), ``BENCH_SYMBOLS``
(200; fewer for a quick look).

Run: ``.venv/bin/python bench/bench_runner.py`` (``make bench``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis as sync_redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared import keys  # noqa: E402
from shared.messages import (  # noqa: E402
    BotCommand,
    CommandAction,
    ExecutionReport,
    ExecutionStatus,
    OrderIntent,
    decode_as,
    encode,
    encode_json,
)
from shared.strategies.base import SignalAction  # noqa: E402
from shared.strategies.registry import get_strategy_class  # noqa: E402
from tests.support.messages import candle  # noqa: E402
from tests.support.processes import base_env  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SYMBOLS = [f"S{i:03d}USDT" for i in range(int(os.environ.get("BENCH_SYMBOLS", "200")))]
PERIODS = (5, 7, 9, 11, 14)
BOTS_PER_SYMBOL = 50
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
SINGLES = int(os.environ.get("BENCH_SINGLES", "40"))
MINUTE = 60_000


def config(symbol: str, period: int) -> str:
    return json.dumps(
        {
            "name": "bench",
            "symbol": symbol,
            "interval": "1m",
            "strategy": "rsi",
            "params": {"period": period, "oversold": 30, "sell_on_overbought": False},
            "quote_allocation": "1000",
            "sizing": {"mode": "fixed_quote", "quote_amount": "10"},
        }
    )


class Market:
    def __init__(self, r: sync_redis.Redis) -> None:
        self.r = r
        now = int(time.time() * 1000)
        self.open_time = (now // MINUTE) * MINUTE - 100 * MINUTE
        self.price = {s: 1000.0 for s in SYMBOLS}
        self.closes: list[float] = []  # every symbol follows the same path in bursts

    def seed(self) -> None:
        pipe = self.r.pipeline(transaction=False)
        for s in SYMBOLS:
            items = [
                encode_json(candle(s, MINUTE, self.open_time + i * MINUTE, 1000.0 - i))
                for i in range(100)
            ]
            pipe.rpush(keys.candles(s, "1m"), *items)
            # the exchange's first candle: the runner seeds from these, not wait for more
            pipe.hset(keys.MARKET_HISTORY_START, keys.subscription(s, "1m"), self.open_time)
            self.price[s] = 1000.0 - 99
        pipe.execute()
        self.closes = [1000.0 - i for i in range(100)]
        self.open_time += 99 * MINUTE

    def expected_buyers(self) -> int:
        """Bots whose RSI crosses back above 30 on the last close (computed here with the
        strategy's own vectorised code, independently of the runner's evaluators)."""
        rsi = get_strategy_class("rsi")
        per_period = BOTS_PER_SYMBOL // len(PERIODS)
        return sum(
            per_period * len(SYMBOLS)
            for p in PERIODS
            if rsi({"period": p, "oversold": 30, "sell_on_overbought": False})
            .analyze_closes(self.closes)
            .action
            is SignalAction.BUY
        )

    def step(self, symbols: list[str], delta: float) -> list[bytes]:
        self.open_time += MINUTE
        if len(symbols) == len(SYMBOLS):
            self.closes.append(self.closes[-1] + delta)
        pipe = self.r.pipeline(transaction=False)
        for s in symbols:
            self.price[s] += delta
            c = candle(s, MINUTE, self.open_time, self.price[s])
            pipe.rpush(keys.candles(s, "1m"), encode_json(c))
            pipe.xadd(keys.candle_stream(s, "1m"), encode(c))
        replies = pipe.execute()
        return [replies[i] for i in range(1, len(replies), 2)]


def intents_after(r: sync_redis.Redis, last_id: bytes | str) -> list[tuple[bytes, OrderIntent]]:
    return [
        (eid, decode_as(f, OrderIntent))
        for eid, f in r.xrange(keys.ORDER_INTENTS, min=b"(" + _b(last_id))
    ]


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def reject(r: sync_redis.Redis, intents: list[OrderIntent]) -> None:
    pipe = r.pipeline(transaction=False)
    for it in intents:
        report = ExecutionReport(
            intent_id=it.intent_id,
            client_order_id="bench",
            bot_id=it.bot_id,
            symbol=it.symbol,
            side=it.side,
            status=ExecutionStatus.REJECTED,
            final=True,
            reason="bench",
            epoch=it.epoch,
        )
        pipe.xadd(keys.EXECUTIONS, encode(report))
    pipe.execute()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pipe = r.pipeline(transaction=False)
        for it in intents:
            pipe.exists(keys.bot_pending(it.bot_id))
        if not any(pipe.execute()):
            return
        time.sleep(0.05)
    raise RuntimeError("runner did not apply the rejections")


def settle(
    r: sync_redis.Redis, last_id: bytes, expected: int, quiet_s: float = 0.3
) -> list[tuple[bytes, OrderIntent]]:
    """Every intent after ``last_id``: waits for ``expected`` of them (up to 15 s), then
    for ``quiet_s`` without more (an extra one would be a doubled entry). Polls only XLEN
    meanwhile, so the bench takes little CPU from the runner."""
    start_len = xlen_at(r, last_id)
    deadline = time.monotonic() + 15
    length = start_len
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.01)
        now_len = r.xlen(keys.ORDER_INTENTS)
        if now_len != length:
            length, quiet_since = now_len, time.monotonic()
        if length - start_len >= expected and time.monotonic() - quiet_since >= quiet_s:
            break
    return intents_after(r, last_id)


def xlen_at(r: sync_redis.Redis, last_id: bytes) -> int:
    """How many intents the stream held up to ``last_id`` (nothing is trimmed)."""
    return int(r.xlen(keys.ORDER_INTENTS)) - len(r.xrange(keys.ORDER_INTENTS, min=b"(" + last_id))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(r: sync_redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def last_intent_id(r: sync_redis.Redis) -> bytes:
    last = r.xrevrange(keys.ORDER_INTENTS, count=1)
    return last[0][0] if last else b"0-0"


def ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_by_commands(r: sync_redis.Redis, ids: list[str], env: dict[str, str], log: Any) -> None:
    """10,000 START commands -> all running: the API's way (desired ``running``, then a
    START command per bot) to a runner whose reconcile pass comes only every 50 s, so
    the commands alone start them. That runner then stops (releasing every lease) and
    the bench runner adopts the bots."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services",
            "runner",
            "--capacity",
            "10000",
            "--instance",
            "starter",
            "--lease-ms",
            "60000",
            "--reconcile-interval",
            "50",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while r.hget(keys.health("runner", "starter"), "ts") is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the starter runner did not come up")
            time.sleep(0.05)
        time.sleep(2.0)  # past its first reconcile pass (1 s after start), which finds nothing
        t0 = time.monotonic()
        pipe = r.pipeline(transaction=False)
        for n, bot_id in enumerate(ids):
            pipe.hset(keys.bot(bot_id), "desired", "running")
            command = BotCommand(
                command_id=f"start-{n}", bot_id=bot_id, action=CommandAction.START, issued_at=0
            )
            pipe.xadd(keys.BOT_COMMANDS, encode(command))
        pipe.execute()
        sent = time.monotonic() - t0
        # The runner takes the commands in stream order: wait (cheaply, one key) for the
        # last bot, then check every status (10,000 reads, so not in a tight loop: they
        # would take the CPU the runner needs).
        while True:
            if r.hget(keys.bot(ids[-1]), "status") == b"running":
                pipe = r.pipeline(transaction=False)
                for bot_id in ids:
                    pipe.hget(keys.bot(bot_id), "status")
                running = sum(v == b"running" for v in pipe.execute())
                if running == len(ids):
                    break
            if proc.poll() is not None or time.monotonic() - t0 > 45:
                raise RuntimeError(f"START commands: not all of {len(ids)} running")
            time.sleep(0.02)
        print(
            f"{len(ids)} START commands -> all running in {time.monotonic() - t0:.1f}s "
            f"(commands written in {sent:.1f}s; no reconcile pass meanwhile)"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        url = server.url
        r = sync_redis.Redis.from_url(url)
        market = Market(r)
        market.seed()
        now = int(time.time() * 1000)
        pipe = r.pipeline(transaction=False)
        n = 0
        for s in SYMBOLS:
            for j in range(BOTS_PER_SYMBOL):
                bot_id = f"{s}-{j}"
                pipe.hset(
                    keys.bot(bot_id),
                    mapping={
                        "config": config(s, PERIODS[j % len(PERIODS)]),
                        "desired": "stopped",  # started by commands, below
                        "status": "stopped",
                        "created_at": now,
                    },
                )
                pipe.zadd(keys.BOTS, {bot_id: now + n})
                n += 1
        pipe.execute()
        env = base_env({"BOTFLEET_REDIS_URL": url, "BOTFLEET_LOG_LEVEL": "warning"})
        log = open(Path(tmp) / "runner.log", "wb")  # noqa: SIM115
        ids = [f"{s}-{j}" for s in SYMBOLS for j in range(BOTS_PER_SYMBOL)]
        try:
            start_by_commands(r, ids, env, log)
        except BaseException:
            log.flush()
            print((Path(tmp) / "runner.log").read_text()[-3000:])
            raise
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services",
                "runner",
                "--capacity",
                "10000",
                "--instance",
                "bench",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        try:
            t0 = time.monotonic()
            while True:
                held = r.hget(keys.health("runner", "bench"), "bots")
                if held is not None and int(held) == n:
                    break
                if proc.poll() is not None or time.monotonic() - t0 > 120:
                    raise RuntimeError(f"runner did not take the bots (held {held})")
                time.sleep(0.2)
            print(
                f"runner holds {n} bots over {len(SYMBOLS)} symbols after {time.monotonic() - t0:.1f}s"
                f" (load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)"
            )
            time.sleep(1.5)  # first HOLD log flushes and housekeeping out of the way

            bursts: list[float] = []
            counts: list[int] = []
            cpu: list[tuple[float, float, float]] = []  # wall, runner, redis seconds
            for round_no in range(ROUNDS + 1):
                market.step(SYMBOLS, -8.0)
                time.sleep(1.0)  # HOLD decisions and logs of the down candle (a minute in life)
                before = last_intent_id(r)
                cpu0 = (time.monotonic(), cpu_s(proc.pid), redis_cpu_s(r))
                candle_ids = market.step(SYMBOLS, +4.0)
                expected = market.expected_buyers()
                got = settle(r, before, expected)
                cpu1 = (time.monotonic(), cpu_s(proc.pid), redis_cpu_s(r))
                if len(got) != expected:
                    raise RuntimeError(f"burst produced {len(got)} intents, expected {expected}")
                if round_no == 0:  # RSI first dips below 30; the crossings start next round
                    reject(r, [it for _, it in got])
                    continue
                if not got:
                    raise RuntimeError("no intents from the burst")
                bursts.append(ms(got[-1][0]) - ms(candle_ids[0]))
                counts.append(len(got))
                cpu.append(tuple(b - a for a, b in zip(cpu0, cpu1, strict=True)))  # type: ignore[arg-type]
                reject(r, [it for _, it in got])
                time.sleep(0.3)

            print(
                "bursts (intents: ms): "
                + ", ".join(f"{c}: {b:.0f}" for c, b in zip(counts, bursts, strict=True))
            )
            print(
                f"burst (200 candles -> last intent): intents per burst {min(counts)}..{max(counts)}; "
                f"p50 {statistics.median(bursts):.0f} ms, p99 {pct(bursts, 0.99):.0f} ms, "
                f"max {max(bursts):.0f} ms over {len(bursts)} bursts (target p99 < 250 ms)"
            )
            big = [c for n, c in zip(counts, cpu, strict=True) if n == max(counts)]
            print(
                f"CPU per {max(counts)}-intent burst (incl. HOLD logs and the bench's wait): "
                f"runner {statistics.median(c[1] for c in big) * 1000:.0f} ms, "
                f"redis-server {statistics.median(c[2] for c in big) * 1000:.0f} ms "
                f"in {statistics.median(c[0] for c in big) * 1000:.0f} ms wall"
            )
            stats = r.info("commandstats")
            for name in ("cmdstat_evalsha", "cmdstat_xread", "cmdstat_xadd"):
                if name in stats:
                    st = stats[name]
                    print(
                        f"  redis {name[8:]}: {st['calls']} calls, {st['usec_per_call']:.0f} us "
                        f"per call, {st['usec'] / 1e6:.2f} s in all"
                    )
            singles: list[float] = []
            for k in range(SINGLES):
                s = SYMBOLS[k % len(SYMBOLS)]
                market.step([s], -8.0)
                time.sleep(0.05)
                before = last_intent_id(r)
                start = time.perf_counter()
                market.step([s], +4.0)
                reply = r.xread({keys.ORDER_INTENTS: before}, count=1, block=2000)
                if not reply:
                    continue  # this symbol's RSI did not cross this time
                singles.append((time.perf_counter() - start) * 1000)
                got = settle(r, before, 1, quiet_s=0.1)
                reject(r, [it for _, it in got])

            if not singles:
                raise RuntimeError("no single candle produced an intent")
            print(f"load average at the end {os.getloadavg()[0]:.2f}")
            print(
                f"single candle -> first intent: p50 {statistics.median(singles):.2f} ms, "
                f"p90 {pct(singles, 0.9):.2f} ms over {len(singles)} (target p50 < 2 ms)"
            )
        except BaseException:
            log.flush()
            print((Path(tmp) / "runner.log").read_text()[-3000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            r.close()
            server.stop()


if __name__ == "__main__":
    main()
