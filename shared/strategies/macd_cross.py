"""``macd_cross``: trend following on the MACD crossing its signal line.

BUY when the MACD line crosses above the signal line (it was at or below it on the
previous candle and is above it now), optionally only while the MACD is below zero
(a cross in a pullback); SELL when it crosses below. MACD as TA-Lib defines it
(:mod:`shared.strategies.oscillators`). Needs ``slow + signal`` closes: the first
signal value and one before it.
"""

from __future__ import annotations

import math

from pydantic import Field, ValidationInfo, field_validator

from shared.strategies.bars import Bar, Bars
from shared.strategies.base import (
    Signal,
    SignalAction,
    StrategyEvaluator,
    StrategyParams,
    TradingStrategy,
)
from shared.strategies.indicators import ArrayLike, as_float_array, converged_after, ema_warmup
from shared.strategies.oscillators import MACD, MACDValues, macd


class MACDCrossParams(StrategyParams):
    fast_period: int = Field(12, ge=2, le=500, description="fast EMA length in candles")
    slow_period: int = Field(
        26, ge=3, le=1000, description="slow EMA length; greater than fast_period"
    )
    signal_period: int = Field(9, ge=1, le=500, description="signal line: EMA of the MACD")
    buy_below_zero_only: bool = Field(
        False, description="BUY only on a cross while the MACD is below zero"
    )
    sell_on_cross_down: bool = Field(True, description="emit SELL when the MACD crosses below")

    @field_validator("slow_period")
    @classmethod
    def _slower_than_fast(cls, value: int, info: ValidationInfo) -> int:
        fast = info.data.get("fast_period")
        if fast is not None and value <= fast:
            raise ValueError(f"must be greater than fast_period ({fast})")
        return value


class MACDCrossStrategy(TradingStrategy[MACDCrossParams]):
    name = "macd_cross"
    title = "MACD cross: buy when the MACD crosses above its signal line"
    uses_ohlcv = False
    params_model = MACDCrossParams

    @property
    def min_candles(self) -> int:
        return self.params.slow_period + self.params.signal_period

    @property
    def signal_warmup(self) -> int:
        # the slow EMA converges, then the signal EMA of the (converged) MACD does
        p = self.params
        return ema_warmup(p.slow_period) + converged_after(2.0 / (p.signal_period + 1)) + 1

    def decide(self, prev: MACDValues | None, now: MACDValues) -> Signal:
        p = self.params
        meta = {"macd": now.macd, "signal": now.signal, "hist": now.hist}
        label = f"MACD({p.fast_period},{p.slow_period},{p.signal_period}) {now.macd:.8g} vs signal {now.signal:.8g}"
        if prev is not None:
            meta["prev_hist"] = prev.hist
            if prev.hist <= 0.0 < now.hist and (not p.buy_below_zero_only or now.macd < 0.0):
                return Signal(
                    action=SignalAction.BUY, reason=f"crossed above: {label}", metadata=meta
                )
            if p.sell_on_cross_down and prev.hist >= 0.0 > now.hist:
                return Signal(
                    action=SignalAction.SELL, reason=f"crossed below: {label}", metadata=meta
                )
        return Signal(action=SignalAction.HOLD, reason=label, metadata=meta)

    def analyze_closes(self, closes: ArrayLike) -> Signal:
        x = as_float_array(closes)
        if x.size < self.min_candles:
            return self.not_enough(x.size)
        p = self.params
        lines = macd(x, p.fast_period, p.slow_period, p.signal_period)
        now = MACDValues(float(lines.macd[-1]), float(lines.signal[-1]), float(lines.hist[-1]))
        prev = None
        if not math.isnan(lines.signal[-2]):
            prev = MACDValues(float(lines.macd[-2]), float(lines.signal[-2]), float(lines.hist[-2]))
        return self.decide(prev, now)

    def evaluator(self) -> MACDCrossEvaluator:
        return MACDCrossEvaluator(self)


class MACDCrossEvaluator(StrategyEvaluator[MACDCrossStrategy]):
    def __init__(self, strategy: MACDCrossStrategy) -> None:
        super().__init__(strategy)
        p = strategy.params
        self._macd = MACD(p.fast_period, p.slow_period, p.signal_period)

    def _seed(self, bars: Bars) -> None:
        self._macd.seed(bars.close)

    def _step(self, bar: Bar) -> Signal:
        prev = self._macd.value
        now = self._macd.update(bar.close)
        if now is None or self.count < self._min:
            return self.strategy.not_enough(self.count)
        return self.strategy.decide(prev, now)
