"""``on_bars`` (the backtester's way in) gives every strategy's signals exactly as
``on_candle`` (the runner's) gives them, candle by candle, whatever the chunks: same
actions, reasons and metadata on the same candles, and the same state after."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from shared.klines import read_klines
from shared.strategies.bars import Bar, Bars
from shared.strategies.base import Signal, SignalAction, StrategyEvaluator
from shared.strategies.ema_cross import EMACrossEvaluator, EMACrossStrategy
from shared.strategies.indicators import EMA
from shared.strategies.ranges import ATR
from shared.strategies.registry import create_strategy, strategy_names

FIXTURES = Path(__file__).parents[2] / "fixtures" / "replay"


def recorded(name: str) -> Bars:
    interval = name.split("-")[1].split(".")[0]
    klines = list(read_klines(FIXTURES / name, interval))
    t = np.array([k.open_time for k in klines], dtype=np.int64)
    cols = [np.array([k[i] for k in klines], dtype=np.float64) for i in range(3, 8)]
    return Bars(t, t + 59_999, *cols)


def generated(n: int, seed: int) -> Bars:
    """A walk with flat stretches (equal EMAs, RSI of no movement) and jumps."""
    rng = random.Random(seed)
    price, rows = 100.0, []
    for i in range(n):
        if (i // 50) % 7 == 3:
            move = 0.0
        else:
            move = rng.gauss(0, 0.01) + (0.08 if rng.random() < 0.005 else 0.0)
        o, price = price, round(price * math.exp(move), 2)
        h = max(o, price) * (1 + abs(rng.gauss(0, 0.003))) if move else o
        lo = min(o, price) * (1 - abs(rng.gauss(0, 0.003))) if move else o
        rows.append((o, h, lo, price, 1.0 + i % 3))
    t = np.arange(n, dtype=np.int64) * 60_000 + 1_700_000_000_000
    cols = [np.array(c, dtype=np.float64) for c in zip(*rows, strict=True)]
    return Bars(t, t + 59_999, *cols)


SERIES = {
    "BTCUSDT-1m": recorded("BTCUSDT-1m.csv"),
    "ETHUSDT-5m": recorded("ETHUSDT-5m.csv"),
    "walk": generated(3000, seed=4),
}
PARAMS: dict[str, list[dict[str, Any]]] = {
    "ema_cross": [{}, {"fast_period": 2, "slow_period": 3}, {"sell_on_cross_down": False}],
    "rsi": [{}, {"period": 3}],
}


def encoded(signals: dict[int, Any]) -> dict[int, bytes]:
    return {i: msgspec.json.encode(s) for i, s in signals.items()}


def one_by_one(evaluator: StrategyEvaluator[Any], bars: Bars) -> dict[int, bytes]:
    out = {}
    for i in range(bars.size):
        signal = evaluator.on_candle(bars.bar(i))
        if signal.action is not SignalAction.HOLD:
            out[i] = msgspec.json.encode(signal)
    return out


def in_chunks(evaluator: StrategyEvaluator[Any], bars: Bars, size: int) -> dict[int, bytes]:
    out = {}
    for start in range(0, bars.size, size):
        got = evaluator.on_bars(bars[start : start + size])
        out.update({start + i: s for i, s in encoded(got).items()})
    return out


@pytest.mark.parametrize("series", sorted(SERIES))
@pytest.mark.parametrize("name", strategy_names())
def test_on_bars_gives_the_signals_of_on_candle(name: str, series: str) -> None:
    bars = SERIES[series]
    for params in PARAMS.get(name, [{}]):
        strategy = create_strategy(name, params)
        live = strategy.evaluator()
        want = one_by_one(live, bars)
        if series == "walk" and name in ("ema_cross", "rsi"):
            assert len(want) >= 20, "too few signals to compare anything"
        for size in (1, 7, 64, bars.size):
            fast = strategy.evaluator()
            assert in_chunks(fast, bars, size) == want, (params, size)
            assert msgspec.json.encode(fast.last_signal) == msgspec.json.encode(live.last_signal)
            assert (fast.count, fast.last_open_time) == (live.count, live.last_open_time)
        # seeded from history (the runner's start) then fed in chunks, as a bot adopted
        seeded, fed = strategy.evaluator(), strategy.evaluator()
        head = bars.size // 3
        seeded.seed_bars(bars[:head])
        fed.seed_bars(bars[:head])
        want_tail = one_by_one(seeded, bars[head:])
        assert in_chunks(fed, bars[head:], 50) == want_tail
        # a candle already taken is the one-at-a-time rule's: the last signal again
        assert fed.on_bars(bars[bars.size - 1 :]) == (
            {0: fed.last_signal} if fed.last_signal.action is not SignalAction.HOLD else {}
        )


def test_update_many_is_update_in_turn_to_the_bit() -> None:
    bars = SERIES["walk"]
    closes, highs, lows = bars.close.tolist(), bars.high.tolist(), bars.low.tolist()
    for period in (1, 2, 9, 50):
        one, many = EMA(period), EMA(period)
        want = [one.update(x) for x in closes]
        got = many.update_many(closes[:5]) + many.update_many(closes[5:])
        assert got == want
        assert many.value == one.value
        a, b = ATR(period), ATR(period)
        want = [a.update(h, lo, c) for h, lo, c in zip(highs, lows, closes, strict=True)]
        got = b.update_many(highs[:3], lows[:3], closes[:3])
        got += b.update_many(highs[3:], lows[3:], closes[3:])
        assert got == want
        assert (b.value, b._count, b._prev_close) == (a.value, a._count, a._prev_close)


def test_a_subclass_with_its_own_step_is_not_given_ema_cross_s_shortcut() -> None:
    class Always(EMACrossEvaluator):
        def _step(self, bar: Bar) -> Signal:
            return Signal(action=SignalAction.BUY, reason=f"always at {bar.close}")

    bars = SERIES["walk"][:40]
    got = Always(EMACrossStrategy()).on_bars(bars)
    assert sorted(got) == list(range(40))
    assert encoded(got) == one_by_one(Always(EMACrossStrategy()), bars)
