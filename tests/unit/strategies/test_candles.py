"""Whole candles through every strategy (the plugin's included): the incremental
evaluator fed ``on_candle`` gives the signals of ``analyze`` on the same candles, the ATR
travels with them, and ATR exits follow it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from shared.messages import Candle
from shared.strategies import Bar, Bars, ExitPlan, create_strategy, exit_levels, strategy_names
from shared.strategies.base import SignalAction
from shared.strategies.ranges import atr
from tests.unit.strategies.test_strategies import assert_same_signal

CANDLE_PARAMS: list[tuple[str, dict[str, Any]]] = [
    ("rsi", {}),
    ("ema_cross", {"fast_period": 5, "slow_period": 20}),
    ("bollinger", {}),
    ("macd_cross", {}),
    ("ema_stochrsi", {}),
    ("ema_stochrsi", {"ema_fast": 3, "ema_mid": 5, "ema_slow": 9, "oversold": 50}),
    ("donchian_breakout", {"entry_period": 10, "exit_period": 5}),
]


def ohlcv(n: int, seed: int) -> list[Candle]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(opens, close) * (1.0 + rng.random(n) * 0.005)
    low = np.minimum(opens, close) * (1.0 - rng.random(n) * 0.005)
    return [
        Candle(
            symbol="BTCUSDT",
            interval="1m",
            open_time=i * 60_000,
            close_time=i * 60_000 + 59_999,
            open=Decimal(f"{opens[i]:.8f}"),
            high=Decimal(f"{high[i]:.8f}"),
            low=Decimal(f"{low[i]:.8f}"),
            close=Decimal(f"{close[i]:.8f}"),
            volume=Decimal(f"{rng.random() * 10:.8f}"),
        )
        for i in range(n)
    ]


CANDLES = ohlcv(1200, seed=3)


def test_the_example_plugin_is_registered() -> None:
    assert "donchian_breakout" in strategy_names()


@pytest.mark.parametrize(("name", "params"), CANDLE_PARAMS)
@pytest.mark.parametrize("seed_len", [0, 5, 300])
def test_on_candle_gives_the_signals_of_analyze(
    name: str, params: dict[str, Any], seed_len: int
) -> None:
    strategy = create_strategy(name, params)
    evaluator = strategy.evaluator()
    assert_same_signal(
        evaluator.seed_candles(CANDLES[:seed_len]), strategy.analyze(CANDLES[:seed_len])
    )
    actions = set()
    for i in range(seed_len, len(CANDLES)):
        got = evaluator.on_candle(CANDLES[i])
        if i % 7 == 0 or got.action is not SignalAction.HOLD:  # analyze is O(n): sample
            assert_same_signal(got, strategy.analyze(CANDLES[: i + 1]))
        actions.add(got.action)
    assert SignalAction.BUY in actions and SignalAction.SELL in actions
    assert evaluator.last_open_time == CANDLES[-1].open_time


def test_signals_carry_the_atr_of_the_strategy() -> None:
    bars = Bars.from_candles(CANDLES)
    want = atr(bars.high, bars.low, bars.close, 14)
    evaluator = create_strategy("rsi").evaluator()
    evaluator.seed_bars(bars[:100])
    for i in range(100, 200):
        got = evaluator.on_candle(bars.bar(i))
        assert got.metadata["atr"] == pytest.approx(want[i], rel=1e-12)
    custom = create_strategy("ema_stochrsi", {"atr_period": 5})
    assert custom.analyze(CANDLES).metadata["atr"] == pytest.approx(
        atr(bars.high, bars.low, bars.close, 5)[-1], rel=1e-12
    )


def test_closes_alone_cannot_feed_a_strategy_that_reads_whole_candles() -> None:
    evaluator = create_strategy("ema_stochrsi").evaluator()
    with pytest.raises(TypeError, match="whole candles"):
        evaluator.on_close(1.0)
    with pytest.raises(TypeError, match="whole candles"):
        create_strategy("donchian_breakout").analyze_closes([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        evaluator.on_candle(Bar(0, 0, 1.0, float("nan"), 1.0, 1.0, 1.0))


def test_atr_exit_levels() -> None:
    entry, atr_value = Decimal(100), Decimal(2)
    plan = ExitPlan(stop_loss_atr=Decimal(3), take_profit_atr=Decimal(2))
    assert exit_levels(plan, entry, atr_value) == exit_levels(plan, entry, atr_value)
    levels = exit_levels(plan, entry, atr_value)
    assert (levels.stop_price, levels.take_profit_price) == (Decimal(94), Decimal(104))
    both = ExitPlan(
        stop_loss_pct=Decimal(5),
        take_profit_pct=Decimal(10),
        stop_loss_atr=Decimal(1),
        take_profit_atr=Decimal(10),
    )
    levels = exit_levels(both, entry, atr_value)  # the nearer of each
    assert (levels.stop_price, levels.take_profit_price) == (Decimal(98), Decimal(110))
    assert exit_levels(plan, entry, None).stop_price is None  # no ATR known: no ATR stop
    assert exit_levels(ExitPlan(stop_loss_atr=Decimal(60)), entry, atr_value).stop_price is None
