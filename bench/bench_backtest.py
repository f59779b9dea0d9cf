"""Candles per second of ``botfleet backtest``'s engine: one bot over generated klines.

Two cases (issue 17): 45,000+ 1h candles and a year of 1m candles (525,600), each a
Binance 12-column CSV written to a temporary folder first (not timed), then read,
checked and backtested as the command does (``read_columns`` -> ``Backtest.feed``): the
figure includes parsing (printed apart too). One core, one process. Memory: peak RSS growth over the run
(the file is streamed; the equity curve is thinned; only round trips accumulate).

A third case is a sweep (``services/backtest/sweep.py``): 100 parameter sets of
ema_cross over the 1h file, every worker process of the machine; its figure is
bot-candles per second of wall time (points x candles / elapsed, reading the file and
forking the workers included), and per CPU-second of the parent and its workers (the
figure a loaded machine does not distort).

Knobs (environment): ``BENCH_STRATEGY`` (ema_cross), ``BENCH_1H`` (45000),
``BENCH_1M`` (525600), ``BENCH_SWEEP`` (100 points; 0 skips it), ``BENCH_REPEAT`` (3:
the one-bot figures are the best of that many runs).

Run: ``.venv/bin/python bench/bench_backtest.py``.
"""

from __future__ import annotations

import math
import os
import random
import resource
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from services.backtest.columns import read_columns
from services.backtest.engine import Backtest
from services.backtest.rules import default_rules
from shared.fills import Costs
from shared.strategies.config import BotConfig

STRATEGY = os.environ.get("BENCH_STRATEGY", "ema_cross")
N_1H = int(os.environ.get("BENCH_1H", "45000"))
N_1M = int(os.environ.get("BENCH_1M", "525600"))
N_SWEEP = int(os.environ.get("BENCH_SWEEP", "100"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def write_klines(path: Path, n: int, step_ms: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    price, t = 60_000.0, 1_600_000_000_000 // step_ms * step_ms
    vol = 0.004 * math.sqrt(step_ms / 3_600_000)
    with path.open("w") as fh:
        for i in range(n):
            o = price
            c = max(1.0, o * math.exp(rng.gauss(0, vol) + vol * 0.1 * math.sin(i / 300)))
            h = max(o, c) * (1 + abs(rng.gauss(0, vol / 2)))
            lo = min(o, c) * (1 - abs(rng.gauss(0, vol / 2)))
            fh.write(
                f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{rng.random() * 10:.5f},"
                f"{t + step_ms - 1},0,10,0,0,0\n"
            )
            price, t = float(f"{c:.2f}"), t + step_ms


def config(interval: str) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": "bench",
            "symbol": "BTCUSDT",
            "interval": interval,
            "strategy": STRATEGY,
            "params": {},
            "quote_allocation": "1000",
            "stop_loss_pct": "2",
            "take_profit_pct": "4",
            "trailing_stop_pct": "3",
        }
    )


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the sweep's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(label: str, interval: str, step_ms: int, n: int, folder: Path) -> None:
    path = folder / f"BTCUSDT-{interval}.csv"
    write_klines(path, n, step_ms)
    before = rss_kb()
    # No fee or slippage: thousands of round trips on a random walk would otherwise
    # drain the bot below the minimum notional, and a bot stuck with an unsellable
    # position is another workload. The arithmetic per fill is the same.
    costs = Costs(taker_fee=Decimal(0), slippage=Decimal(0))
    seconds = math.inf
    for _ in range(REPEAT):  # the best of REPEAT runs: the first pays one-time imports
        engine = Backtest(config(interval), default_rules("BTCUSDT"), costs)
        start = time.process_time()
        engine.feed(read_columns(path, interval))
        seconds = min(seconds, time.process_time() - start)
    grown = rss_kb() - before
    start = time.process_time()
    for _ in read_columns(path, interval):
        pass
    parse = time.process_time() - start
    print(
        f"{label:<28} {n:>8} candles  {seconds:7.2f} s CPU  {n / seconds:>10,.0f} candles/s  "
        f"{len(engine.trips):>6} round trips  {engine.refused} refused  "
        f"peak RSS +{grown / 1024:.1f} MiB  (reading alone {n / parse:,.0f} candles/s)"
    )


def run_sweep(folder: Path) -> None:
    from services.backtest.sweep import sweep

    path = folder / "BTCUSDT-1h.csv"
    fast = list(range(3, 13))
    slow = list(range(20, 20 + max(1, N_SWEEP // len(fast))))
    base = {**config("1h").model_dump(mode="json"), "strategy": "ema_cross", "params": {}}
    costs = Costs(taker_fee=Decimal(0), slippage=Decimal(0))
    start = time.perf_counter()
    cpu = cpu_seconds()
    result = sweep(
        base, {"fast_period": fast, "slow_period": slow}, path, "csv",
        default_rules("BTCUSDT"), costs, workers=os.cpu_count(),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    points = result["points"]
    work = points * N_1H
    print(
        f"{'sweep, ' + str(points) + ' points, 1h':<28} {work:>8} bot-candles "
        f"{seconds:6.2f} s wall  {work / seconds:>10,.0f} bot-candles/s  "
        f"({os.cpu_count()} workers; {cpu:.1f} s CPU in all: {work / cpu:,.0f} bot-candles "
        "per CPU-second)"
    )


def main() -> None:
    print(f"strategy {STRATEGY}, one bot, one core (parse + check + backtest)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run("1h candles", "1h", 3_600_000, N_1H, folder)
        if N_SWEEP:
            run_sweep(folder)
        run("1m candles (a year)", "1m", 60_000, N_1M, folder)


if __name__ == "__main__":
    main()
