"""Strategies: signals, warm-up, parameters, registry, and analyze == incremental evaluator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from shared.messages import Candle
from shared.strategies.base import OutOfOrderCandle, Signal, SignalAction
from shared.strategies.registry import (
    UnknownStrategyError,
    create_strategy,
    describe_strategies,
    get_strategy_class,
    strategy_names,
    strategy_source,
)
from shared.strategies.rsi import RSIStrategy
from tests.unit.strategies.test_indicators import random_walk

PARAM_SETS: list[tuple[str, dict[str, Any]]] = [
    ("rsi", {}),
    ("rsi", {"period": 5, "oversold": 35, "overbought": 65}),
    ("rsi", {"period": 2, "sell_on_overbought": False}),
    ("ema_cross", {}),
    ("ema_cross", {"fast_period": 1, "slow_period": 3}),
    ("bollinger", {}),
    ("bollinger", {"period": 5, "num_std": 1.0, "exit_at": "middle"}),
    ("macd_cross", {}),
    ("macd_cross", {"fast_period": 3, "slow_period": 7, "signal_period": 2}),
]


def candles(closes: list[float]) -> list[Candle]:
    return [
        Candle(
            symbol="BTCUSDT",
            interval="1m",
            open_time=i * 60_000,
            close_time=i * 60_000 + 59_999,
            open=Decimal(str(c)),
            high=Decimal(str(c)),
            low=Decimal(str(c)),
            close=Decimal(str(c)),
            volume=Decimal(1),
        )
        for i, c in enumerate(closes)
    ]


def assert_same_signal(a: Signal, b: Signal) -> None:
    assert (a.action, a.ready) == (b.action, b.ready)
    assert a.metadata.keys() == b.metadata.keys()
    for k, v in a.metadata.items():
        assert v == pytest.approx(b.metadata[k], rel=1e-9, abs=1e-9), k


@pytest.mark.parametrize(("name", "params"), PARAM_SETS)
@pytest.mark.parametrize("seed_len", [0, 3, 40])
def test_incremental_evaluator_gives_the_signals_of_analyze(
    name: str, params: dict[str, Any], seed_len: int
) -> None:
    strategy = create_strategy(name, params)
    closes = np.array(random_walk(1500, seed=11 + seed_len))
    evaluator = strategy.evaluator()
    assert_same_signal(
        evaluator.seed(closes[:seed_len]), strategy.analyze_closes(closes[:seed_len])
    )
    actions = []
    for i in range(seed_len, closes.size):
        got = evaluator.on_close(float(closes[i]), open_time=i)
        assert_same_signal(got, strategy.analyze_closes(closes[: i + 1]))
        actions.append(got.action)
    assert SignalAction.BUY in actions
    if name != "rsi" or params.get("sell_on_overbought", True):
        assert SignalAction.SELL in actions


def test_analyze_takes_candles() -> None:
    closes = random_walk(200, seed=5)
    strategy = create_strategy("rsi")
    whole = strategy.analyze(candles(closes))
    assert whole.metadata.pop("atr") > 0.0  # close-to-close true ranges
    assert_same_signal(whole, strategy.analyze_closes(closes))


def test_rsi_says_how_many_candles_it_needs() -> None:
    strategy = RSIStrategy({"period": 14})
    signal = strategy.analyze_closes(random_walk(14, seed=1))
    assert signal.action is SignalAction.HOLD and not signal.ready
    assert "15" in signal.reason and "14" in signal.reason
    assert strategy.analyze_closes(random_walk(15, seed=1)).ready


def test_rsi_buys_when_crossing_back_above_oversold() -> None:
    strategy = RSIStrategy({"period": 3, "oversold": 30, "overbought": 70})
    falling = [10.0, 9.0, 8.0, 7.0, 6.0]  # RSI 0
    assert strategy.analyze_closes(falling).action is SignalAction.HOLD
    recovered = [*falling, 9.0]  # avg gain 1, avg loss 2/3 -> RSI 60
    signal = strategy.analyze_closes(recovered)
    assert signal.action is SignalAction.BUY
    assert signal.metadata["prev_rsi"] == 0.0
    assert signal.metadata["rsi"] == pytest.approx(60.0)
    assert "crossed above 30" in signal.reason


def test_rsi_sells_above_overbought_only_when_enabled() -> None:
    rising = [float(i) for i in range(1, 10)]
    assert RSIStrategy().analyze_closes(rising).action is SignalAction.HOLD  # not enough
    assert RSIStrategy({"period": 3}).analyze_closes(rising).action is SignalAction.SELL
    quiet = RSIStrategy({"period": 3, "sell_on_overbought": False})
    assert quiet.analyze_closes(rising).action is SignalAction.HOLD


def test_ema_cross_buys_on_the_cross_up_only() -> None:
    strategy = create_strategy("ema_cross", {"fast_period": 2, "slow_period": 4})
    closes = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 9.0]
    assert strategy.analyze_closes(closes[:-1]).action is SignalAction.HOLD
    assert strategy.analyze_closes(closes).action is SignalAction.BUY
    assert strategy.analyze_closes([*closes, 10.0]).action is SignalAction.HOLD


def test_bollinger_buys_below_the_lower_band() -> None:
    strategy = create_strategy("bollinger", {"period": 5, "num_std": 1.0})
    signal = strategy.analyze_closes([10.0, 10.1, 9.9, 10.0, 8.0])
    assert signal.action is SignalAction.BUY
    assert signal.metadata["percent_b"] < 0
    assert strategy.analyze_closes([10.0, 10.1, 9.9, 10.0, 12.0]).action is SignalAction.SELL


def test_params_are_validated_and_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        create_strategy("rsi", {"oversold": 60, "overbought": 50})
    assert err.value.errors()[0]["loc"] == ("overbought",)
    with pytest.raises(ValidationError) as err:
        create_strategy("ema_cross", {"fast_period": 30, "slow_period": 20})
    assert err.value.errors()[0]["loc"] == ("slow_period",)
    with pytest.raises(ValidationError) as err:
        create_strategy("rsi", {"periodd": 3})
    assert err.value.errors()[0]["loc"] == ("periodd",)
    with pytest.raises(ValidationError):
        create_strategy("rsi", {"period": 1})


def test_equal_parameters_share_one_key() -> None:
    a = create_strategy("rsi", {})
    b = create_strategy("rsi", {"period": 14, "oversold": 30})
    c = create_strategy("rsi", {"overbought": 70.0, "period": 14})
    assert a.key == b.key == c.key
    assert a.key.startswith("rsi:{")
    assert create_strategy("rsi", {"period": 15}).key != a.key


def test_registry_lists_every_strategy_with_a_schema() -> None:
    builtin = ["bollinger", "ema_cross", "ema_cross_trend", "ema_stochrsi", "macd_cross", "rsi"]
    described = {d["name"]: d for d in describe_strategies()}
    assert set(builtin) <= set(strategy_names())
    assert [n for n in sorted(described) if strategy_source(n) == "builtin"] == builtin
    assert strategy_source("donchian_breakout") == "botfleet-donchian donchian_breakout"
    assert described["rsi"]["params_schema"]["properties"]["period"]["default"] == 14
    assert described["rsi"]["params_schema"]["properties"]["period"]["minimum"] == 2
    assert get_strategy_class("ema_cross").params_schema()["additionalProperties"] is False
    with pytest.raises(
        UnknownStrategyError, match="known: bollinger, donchian_breakout, ema_cross"
    ):
        create_strategy("macd")


def test_a_replayed_candle_does_not_move_the_evaluator() -> None:
    closes = random_walk(100, seed=3)
    evaluator = create_strategy("rsi", {"period": 5}).evaluator()
    evaluator.seed(closes[:50], last_open_time=49)
    first = evaluator.on_close(closes[50], open_time=50)
    again = evaluator.on_close(123456.0, open_time=50)
    assert again is first and evaluator.count == 51
    with pytest.raises(OutOfOrderCandle):
        evaluator.on_close(closes[51], open_time=10)
    assert_same_signal(
        evaluator.on_close(closes[51], open_time=51), evaluator.strategy.analyze_closes(closes[:52])
    )


def test_evaluator_rejects_non_finite_closes() -> None:
    evaluator = create_strategy("bollinger").evaluator()
    with pytest.raises(ValueError):
        evaluator.seed([1.0, float("nan")])
    with pytest.raises(ValueError):
        evaluator.on_close(float("inf"))


def test_ten_thousand_distinct_evaluators_each_take_a_candle_as_batch_analysis_would() -> None:
    """Worst case for the runner: no two bots share a computation. Every one of 10,000
    distinct evaluators, stepped one close, gives the batch analysis' verdict over the
    same closes (its cost per candle is measured in bench/bench_indicators.py)."""
    closes = np.array(random_walk(501, seed=9))
    pairs = []
    for i in range(10_000):
        kind = i % 3
        if kind == 0:
            s = create_strategy("rsi", {"period": 2 + i % 50, "oversold": 20 + i % 17})
        elif kind == 1:
            s = create_strategy(
                "ema_cross", {"fast_period": 1 + i % 20, "slow_period": 21 + i % 60}
            )
        else:
            s = create_strategy("bollinger", {"period": 2 + i % 60, "num_std": 1 + (i % 10) / 10})
        e = s.evaluator()
        e.seed(closes[:-1])
        pairs.append((s, e))
    last = float(closes[-1])
    stepped = [e.on_close(last, open_time=500) for _s, e in pairs]
    for (s, _e), signal in zip(pairs[::97], stepped[::97], strict=True):
        assert signal.action == s.analyze_closes(closes).action, s.name
