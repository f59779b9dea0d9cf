"""``ema_cross``: trend following on a fast/slow EMA crossover.

BUY when the fast EMA crosses above the slow one (it was at or below it on the previous
candle and is above it now); SELL when it crosses below. Needs ``slow_period + 1``
closes (two values of the slow EMA).
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from shared.strategies.bars import Bar, Bars
from shared.strategies.base import (
    Signal,
    SignalAction,
    StrategyEvaluator,
    StrategyParams,
    TradingStrategy,
)
from shared.strategies.indicators import EMA, ArrayLike, as_float_array, ema, ema_warmup


class EMACrossParams(StrategyParams):
    fast_period: int = Field(9, ge=1, le=500, description="fast EMA length in candles")
    slow_period: int = Field(
        21, ge=2, le=1000, description="slow EMA length; greater than fast_period"
    )
    sell_on_cross_down: bool = Field(True, description="emit SELL when the fast EMA crosses below")

    @field_validator("slow_period")
    @classmethod
    def _slower_than_fast(cls, value: int, info: ValidationInfo) -> int:
        fast = info.data.get("fast_period")
        if fast is not None and value <= fast:
            raise ValueError(f"must be greater than fast_period ({fast})")
        return value


class EMACrossStrategy(TradingStrategy[EMACrossParams]):
    name = "ema_cross"
    title = "EMA crossover: buy when the fast EMA crosses above the slow EMA"
    uses_ohlcv = False
    params_model = EMACrossParams

    @property
    def signal_warmup(self) -> int:
        return ema_warmup(self.params.slow_period) + 1

    @property
    def min_candles(self) -> int:
        return self.params.slow_period + 1

    def decide(self, prev: tuple[float, float] | None, fast: float, slow: float) -> Signal:
        p = self.params
        diff = fast - slow
        meta = {"fast_ema": fast, "slow_ema": slow}
        label = f"EMA({p.fast_period}) {fast:.8g} vs EMA({p.slow_period}) {slow:.8g}"
        if prev is not None:
            prev_diff = prev[0] - prev[1]
            meta["prev_fast_ema"], meta["prev_slow_ema"] = prev
            if prev_diff <= 0.0 < diff:
                return Signal(
                    action=SignalAction.BUY, reason=f"crossed above: {label}", metadata=meta
                )
            if p.sell_on_cross_down and prev_diff >= 0.0 > diff:
                return Signal(
                    action=SignalAction.SELL, reason=f"crossed below: {label}", metadata=meta
                )
        return Signal(action=SignalAction.HOLD, reason=label, metadata=meta)

    def analyze_closes(self, closes: ArrayLike) -> Signal:
        x = as_float_array(closes)
        if x.size < self.min_candles:
            return self.not_enough(x.size)
        fast = ema(x, self.params.fast_period)[-2:].tolist()
        slow = ema(x, self.params.slow_period)[-2:].tolist()
        prev = None if math.isnan(slow[0]) else (fast[0], slow[0])
        return self.decide(prev, fast[1], slow[1])

    def evaluator(self) -> EMACrossEvaluator:
        return EMACrossEvaluator(self)


class EMACrossEvaluator(StrategyEvaluator[EMACrossStrategy]):
    def __init__(self, strategy: EMACrossStrategy) -> None:
        super().__init__(strategy)
        self._fast = EMA(strategy.params.fast_period)
        self._slow = EMA(strategy.params.slow_period)

    def _seed(self, bars: Bars) -> None:
        closes = bars.close
        self._fast.seed(closes)
        self._slow.seed(closes)

    def _step(self, bar: Bar) -> Signal:
        close = bar.close
        pf, ps = self._fast.value, self._slow.value
        fast = self._fast.update(close)
        slow = self._slow.update(close)
        if fast is None or slow is None or self.count < self._min:
            return self.strategy.not_enough(self.count)
        prev = None if pf is None or ps is None else (pf, ps)
        return self.strategy.decide(prev, fast, slow)

    def _steps(self, bars: Bars) -> tuple[dict[int, Signal], Signal]:
        """``_step`` over every bar, faster (the backtester's way in): the EMAs take the
        closes with the same updates, and ``decide`` runs only where the EMAs cross (the
        only candles it can say other than HOLD on) and on the last bar. A subclass with
        its own ``_step`` gets the default (its ``_step`` on every bar)."""
        if type(self)._step is not EMACrossEvaluator._step:
            return super()._steps(bars)
        closes = bars.close.tolist()
        n = len(closes)
        pf, ps = self._fast.value, self._slow.value
        fast = self._fast.update_many(closes)
        slow = self._slow.update_many(closes)
        first = self.count + 1  # the count of bar 0
        self.count += n
        strategy = self.strategy
        # from bar j on, _step decides (both EMAs ready, enough candles): it never stops
        j = max(0, self._min - first)
        while j < n and (fast[j] is None or slow[j] is None):
            j += 1
        if j >= n:
            return {}, strategy.not_enough(self.count)
        f = np.array(fast[j:], dtype=np.float64)
        s = np.array(slow[j:], dtype=np.float64)
        if j:
            pf, ps = fast[j - 1], slow[j - 1]
        prev_f = np.concatenate(([np.nan if pf is None else pf], f[:-1]))
        prev_s = np.concatenate(([np.nan if ps is None or pf is None else ps], s[:-1]))
        diff, prev_diff = f - s, prev_f - prev_s
        crossed = ((prev_diff <= 0.0) & (diff > 0.0)) | ((prev_diff >= 0.0) & (diff < 0.0))
        signals: dict[int, Signal] = {}
        ready = cast(list[float], fast), cast(list[float], slow)  # from bar j on
        for i in (np.flatnonzero(crossed) + j).tolist():
            prev = (pf, ps) if i == j else (ready[0][i - 1], ready[1][i - 1])
            signal = strategy.decide(cast(tuple[float, float], prev), ready[0][i], ready[1][i])
            if signal.action is not SignalAction.HOLD:
                signals[i] = signal
        i = n - 1
        pair = (pf, ps) if i == j else (ready[0][i - 1], ready[1][i - 1])
        last_prev = None if pair[0] is None or pair[1] is None else (pair[0], pair[1])
        return signals, strategy.decide(last_prev, ready[0][i], ready[1][i])
