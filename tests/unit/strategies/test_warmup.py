"""The proof of issue 16: an evaluator seeded from the strategy's declared warm-up (the
last ``warmup_candles`` closed candles, what a restarted or adopting runner reads)
decides exactly as the evaluator that has run since the first candle, and its
indicator values agree to 1e-9 relative, over thousands of candles with RSI 200 and
EMA 50/200. The old fixed seed of 500 candles does not (the test has teeth)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from shared.messages import Candle
from shared.strategies import Bars, create_strategy
from shared.strategies.indicators import CONVERGED, converged_after, ema_warmup, wilder_warmup

N = 12_000


def hourly_candles(n: int, seed: int) -> Bars:
    """BTC-like 1h candles: 0.7 % hourly volatility in trending and ranging regimes."""
    rng = np.random.default_rng(seed)
    drift = np.repeat(rng.normal(0.0, 0.002, n // 500 + 1), 500)[:n]
    close = 40_000.0 * np.exp(np.cumsum(drift + rng.normal(0.0, 0.007, n)))
    opens = np.concatenate([[40_000.0], close[:-1]])
    high = np.maximum(opens, close) * (1.0 + rng.random(n) * 0.004)
    low = np.minimum(opens, close) * (1.0 - rng.random(n) * 0.004)
    times = np.arange(n, dtype=np.int64) * 3_600_000
    return Bars(times, times + 3_599_999, opens, high, low, close, rng.random(n) * 100)


BARS = hourly_candles(N, seed=16)
CASES: list[tuple[str, dict[str, Any]]] = [
    ("rsi", {"period": 200, "oversold": 49.5, "overbought": 50.5}),
    ("ema_cross", {"fast_period": 50, "slow_period": 200}),
    ("macd_cross", {"fast_period": 50, "slow_period": 200, "signal_period": 50}),
    ("ema_stochrsi", {"ema_fast": 20, "ema_mid": 50, "ema_slow": 200, "rsi_period": 100}),
]


def run(name: str, params: dict[str, Any], seed_len: int, start: int, stop: int) -> list[Any]:
    """Signals on candles ``start .. stop-1`` of an evaluator seeded on the ``seed_len``
    candles before ``start`` (``seed_len = start``: run from the first candle)."""
    evaluator = create_strategy(name, params).evaluator()
    evaluator.seed_bars(BARS[start - seed_len : start])
    return [evaluator.on_candle(BARS.bar(i)) for i in range(start, stop)]


def worst(a: list[Any], b: list[Any]) -> tuple[int, float]:
    """Differing actions and the largest relative difference of any indicator value."""
    actions = sum(x.action != y.action for x, y in zip(a, b, strict=True))
    err = 0.0
    for x, y in zip(a, b, strict=True):
        assert x.metadata.keys() == y.metadata.keys()
        for k, v in x.metadata.items():
            scale = max(abs(v), abs(y.metadata[k]), 1.0 if k in ("k", "d") else 0.0)
            if scale:
                err = max(err, abs(v - y.metadata[k]) / scale)
    return actions, err


@pytest.mark.parametrize(("name", "params"), CASES)
def test_seeded_from_the_declared_warmup_decides_as_the_uninterrupted(
    name: str, params: dict[str, Any]
) -> None:
    warmup = create_strategy(name, params).warmup_candles
    assert warmup < N // 2
    decided = 0
    for start in range(warmup, N - 2000, 1700):  # restarts all along the series
        reference = run(name, params, start, start, start + 2000)
        restarted = run(name, params, warmup, start, start + 2000)
        actions, err = worst(reference, restarted)
        assert actions == 0, f"restart at {start}: {actions} different decisions"
        assert err <= 1e-9, f"restart at {start}: indicators differ by {err:.2e}"
        decided += sum(s.action.value != "HOLD" for s in reference)
    assert decided > 0  # the decisions compared include entries and exits


@pytest.mark.parametrize(("name", "params"), CASES[:2])
def test_the_old_fixed_seed_of_500_candles_differs(name: str, params: dict[str, Any]) -> None:
    start = N // 2
    reference = run(name, params, start, start, N)
    short = run(name, params, 500, start, N)
    _, err = worst(reference, short)
    assert err > 1e-6  # far outside the promise (issue 16 measured 3.9 % on RSI 200)


def test_declared_warmups() -> None:
    """What RSI 200 / EMA 200 need: the periods x ln(1/CONVERGED) (about 23 x n for
    Wilder's smoothing, 11.5 x n for an EMA), see docs/strategies.md."""
    assert CONVERGED == 1e-10
    assert converged_after(1 / 200) == 4594
    assert wilder_warmup(200) == 4795
    assert ema_warmup(200) == 2503
    assert create_strategy("rsi", {"period": 200}).warmup_candles == 4795
    assert (
        create_strategy("ema_cross", {"fast_period": 50, "slow_period": 200}).warmup_candles == 2504
    )
    assert create_strategy("rsi").warmup_candles == 326  # defaults fit the 500 kept candles


def test_two_identical_bots_seeded_at_different_moments_agree() -> None:
    """Two runners claiming twin bots at different candles, each seeding from the
    declared warm-up, compute the same values on every later candle."""
    name, params = CASES[0]
    warmup = create_strategy(name, params).warmup_candles
    a = create_strategy(name, params).evaluator()
    b = create_strategy(name, params).evaluator()
    a.seed_bars(BARS[5000 - warmup : 5000])
    b.seed_bars(BARS[5737 - warmup : 5737])
    for i in range(5000, 5737):
        a.on_candle(BARS.bar(i))
    got_a = [a.on_candle(BARS.bar(i)) for i in range(5737, 8000)]
    got_b = [b.on_candle(BARS.bar(i)) for i in range(5737, 8000)]
    actions, err = worst(got_a, got_b)
    assert actions == 0 and err <= 1e-9


def test_candles_as_messages_seed_the_same() -> None:
    candles = [
        Candle(
            symbol="BTCUSDT",
            interval="1h",
            open_time=int(BARS.open_time[i]),
            close_time=int(BARS.close_time[i]),
            open=Decimal(repr(float(BARS.open[i]))),
            high=Decimal(repr(float(BARS.high[i]))),
            low=Decimal(repr(float(BARS.low[i]))),
            close=Decimal(repr(float(BARS.close[i]))),
            volume=Decimal(repr(float(BARS.volume[i]))),
        )
        for i in range(0, 600)
    ]
    a = create_strategy("rsi").evaluator()
    b = create_strategy("rsi").evaluator()
    assert a.seed_candles(candles) == b.seed_bars(BARS[:600])
