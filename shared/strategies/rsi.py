"""``rsi``: buy when Wilder's RSI climbs back above the oversold level.

BUY when the RSI crosses the oversold threshold upwards (the previous value was below
it, the current one is at or above it); with ``sell_on_overbought``, SELL while the RSI
is at or above the overbought threshold. Needs ``period + 1`` closes for a first RSI
value, and one more for a crossing.
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
from shared.strategies.indicators import (
    ArrayLike,
    WilderRSI,
    as_float_array,
    wilder_rsi,
    wilder_warmup,
)


class RSIParams(StrategyParams):
    period: int = Field(14, ge=2, le=500, description="RSI look-back in candles (Wilder smoothing)")
    oversold: float = Field(
        30.0, gt=0, lt=100, description="BUY when the RSI crosses back above this"
    )
    overbought: float = Field(
        70.0, gt=0, lt=100, description="SELL while the RSI is at or above this"
    )
    sell_on_overbought: bool = Field(True, description="emit SELL signals above `overbought`")

    @field_validator("overbought")
    @classmethod
    def _above_oversold(cls, value: float, info: ValidationInfo) -> float:
        oversold = info.data.get("oversold")
        if oversold is not None and value <= oversold:
            raise ValueError(f"must be greater than oversold ({oversold})")
        return value


class RSIStrategy(TradingStrategy[RSIParams]):
    name = "rsi"
    title = "RSI mean reversion: buy when RSI recovers from oversold"
    uses_ohlcv = False
    params_model = RSIParams

    @property
    def signal_warmup(self) -> int:
        return wilder_warmup(self.params.period)

    @property
    def min_candles(self) -> int:
        return self.params.period + 1

    def decide(self, prev: float | None, rsi: float) -> Signal:
        p = self.params
        meta = {"rsi": rsi} if prev is None else {"rsi": rsi, "prev_rsi": prev}
        if prev is not None and prev < p.oversold <= rsi:
            return Signal(
                action=SignalAction.BUY,
                reason=f"RSI({p.period}) crossed above {p.oversold:g}: {prev:.2f} -> {rsi:.2f}",
                metadata=meta,
            )
        if p.sell_on_overbought and rsi >= p.overbought:
            return Signal(
                action=SignalAction.SELL,
                reason=f"RSI({p.period}) {rsi:.2f} is at or above overbought {p.overbought:g}",
                metadata=meta,
            )
        return Signal(action=SignalAction.HOLD, reason=f"RSI({p.period}) {rsi:.2f}", metadata=meta)

    def analyze_closes(self, closes: ArrayLike) -> Signal:
        x = as_float_array(closes)
        if x.size < self.min_candles:
            return self.not_enough(x.size)
        tail = wilder_rsi(x, self.params.period)[-2:].tolist()
        prev = None if len(tail) < 2 or math.isnan(tail[0]) else tail[0]
        return self.decide(prev, tail[-1])

    def evaluator(self) -> RSIEvaluator:
        return RSIEvaluator(self)


class RSIEvaluator(StrategyEvaluator[RSIStrategy]):
    def __init__(self, strategy: RSIStrategy) -> None:
        super().__init__(strategy)
        self._rsi = WilderRSI(strategy.params.period)

    def _seed(self, bars: Bars) -> None:
        closes = bars.close
        self._rsi.seed(closes)

    def _step(self, bar: Bar) -> Signal:
        close = bar.close
        prev = self._rsi.value
        rsi = self._rsi.update(close)
        if rsi is None or self.count < self._min:
            return self.strategy.not_enough(self.count)
        return self.strategy.decide(prev, rsi)
