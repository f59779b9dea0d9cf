"""Per-candle cost of each incremental indicator and strategy evaluator for 10,000 bots.

The worst case for a runner: 10,000 bots that share no computation (distinct
parameters), so a closed candle costs 10,000 indicator updates. For each indicator,
10,000 state objects (periods spread over a realistic range) are seeded on 1,000
generated candles, then every one takes the same next candles; the figure is the time
of one candle for all 10,000 (median of ``BENCH_CANDLES`` candles) and per update.
Strategy evaluators (``on_candle`` with a whole candle: their indicators, the ATR every
signal carries and the Signal) are measured the same way, as are seeds from the
declared warm-up (what a runner does once per group when it claims bots).

Knobs (environment): ``BENCH_BOTS`` (10000), ``BENCH_CANDLES`` (20).

Run: ``.venv/bin/python bench/bench_indicators.py`` (``make bench``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from shared.strategies import Bars, create_strategy
from shared.strategies.indicators import EMA, WMA, RollingBands, WilderRSI
from shared.strategies.oscillators import MACD, Stochastic, StochRSI
from shared.strategies.ranges import ADX, ATR

BOTS = int(os.environ.get("BENCH_BOTS", "10000"))
CANDLES = int(os.environ.get("BENCH_CANDLES", "20"))
HISTORY = 1000


def candles(n: int) -> Bars:
    rng = np.random.default_rng(1)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.005, n)))
    opens = np.concatenate([[30_000.0], close[:-1]])
    high = np.maximum(opens, close) * (1.0 + rng.random(n) * 0.002)
    low = np.minimum(opens, close) * (1.0 - rng.random(n) * 0.002)
    times = np.arange(n, dtype=np.int64) * 60_000
    return Bars(times, times + 59_999, opens, high, low, close, rng.random(n))


BARS = candles(HISTORY + CANDLES)
HEAD = BARS[:HISTORY]

# name -> (factory of the i-th state object, seed it, update it with candle j)
INDICATORS: dict[str, tuple[Callable[[int], Any], bool]] = {
    # (factory, takes high/low/close rather than the close)
    "EMA(2..201)": (lambda i: EMA(2 + i % 200), False),
    "RSI(2..201)": (lambda i: WilderRSI(2 + i % 200), False),
    "WMA(2..101)": (lambda i: WMA(2 + i % 100), False),
    "Bollinger(2..101)": (lambda i: RollingBands(2 + i % 100, 2.0), False),
    "MACD(f/s/9)": (lambda i: MACD(2 + i % 20, 30 + i % 50, 9), False),
    "StochRSI(14..63,14,3,3)": (lambda i: StochRSI(14 + i % 50, 14, 3, 3), False),
    "Stochastic(5..54,3,3)": (lambda i: Stochastic(5 + i % 50, 3, 3), True),
    "ATR(2..201)": (lambda i: ATR(2 + i % 200), True),
    "ADX(2..101)": (lambda i: ADX(2 + i % 100), True),
}


def bench_indicator(make: Callable[[int], Any], hlc: bool) -> tuple[float, float]:
    states = [make(i) for i in range(BOTS)]
    start = time.perf_counter()
    for s in states:
        if hlc:
            s.seed(HEAD.high, HEAD.low, HEAD.close)
        else:
            s.seed(HEAD.close)
    seed_s = time.perf_counter() - start
    times = []
    for j in range(HISTORY, HISTORY + CANDLES):
        h, lo, c = float(BARS.high[j]), float(BARS.low[j]), float(BARS.close[j])
        start = time.perf_counter()
        if hlc:
            for s in states:
                s.update(h, lo, c)
        else:
            for s in states:
                s.update(c)
        times.append(time.perf_counter() - start)
    return statistics.median(times), seed_s


STRATEGIES: dict[str, Callable[[int], dict[str, Any]]] = {
    "rsi": lambda i: {"period": 2 + i % 200},
    "ema_cross": lambda i: {"fast_period": 1 + i % 20, "slow_period": 21 + i % 180},
    "bollinger": lambda i: {"period": 2 + i % 100},
    "macd_cross": lambda i: {"fast_period": 2 + i % 20, "slow_period": 30 + i % 50},
    "ema_stochrsi": lambda i: {"ema_slow": 50 + i % 100, "rsi_period": 5 + i % 30},
}


def bench_strategy(name: str, params: Callable[[int], dict[str, Any]]) -> tuple[float, float, int]:
    strategies = [create_strategy(name, params(i)) for i in range(BOTS)]
    evaluators = [s.evaluator() for s in strategies]
    warmup = max(s.warmup_candles for s in strategies)
    history = candles(warmup + CANDLES)
    start = time.perf_counter()
    for s, e in zip(strategies, evaluators, strict=True):
        e.seed_bars(history[warmup - s.warmup_candles : warmup])
    seed_s = time.perf_counter() - start
    times = []
    for j in range(warmup, warmup + CANDLES):
        bar = history.bar(j)
        start = time.perf_counter()
        for e in evaluators:
            e.on_candle(bar)
        times.append(time.perf_counter() - start)
    return statistics.median(times), seed_s, warmup


def main() -> None:
    print(f"{BOTS} state objects each, median of {CANDLES} candles (one core, CPython)")
    print(f"{'indicator':<26}{'candle, all bots':>18}{'per update':>12}{'seed 1000':>12}")
    for name, (make, hlc) in INDICATORS.items():
        per_candle, seed_s = bench_indicator(make, hlc)
        print(
            f"{name:<26}{per_candle * 1e3:>15.2f} ms{per_candle / BOTS * 1e6:>9.2f} us"
            f"{seed_s / BOTS * 1e6:>9.0f} us"
        )
    print()
    print(
        "strategy evaluators, on_candle(whole candle), ATR included; seeded on the declared warm-up"
    )
    print(
        f"{'strategy':<26}{'candle, all bots':>18}{'per update':>12}{'seed':>12}{'max warm-up':>13}"
    )
    for name, params in STRATEGIES.items():
        per_candle, seed_s, warmup = bench_strategy(name, params)
        print(
            f"{name:<26}{per_candle * 1e3:>15.2f} ms{per_candle / BOTS * 1e6:>9.2f} us"
            f"{seed_s / BOTS * 1e6:>9.0f} us{warmup:>13}"
        )
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
