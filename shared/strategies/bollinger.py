"""``bollinger``: mean reversion on the Bollinger bands.

BUY while the close is at or below the lower band; SELL while it is at or above the
upper band (``exit_at="upper"``) or the middle band (``exit_at="middle"``). Needs
``period`` closes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
    BandValues,
    RollingBands,
    as_float_array,
    bollinger,
)


class BollingerParams(StrategyParams):
    period: int = Field(20, ge=2, le=500, description="moving-average length in candles")
    num_std: float = Field(
        2.0, gt=0, le=10, description="band width in population standard deviations"
    )
    exit_at: Literal["upper", "middle"] = Field("upper", description="band whose touch emits SELL")


class BollingerStrategy(TradingStrategy[BollingerParams]):
    name = "bollinger"
    title = "Bollinger mean reversion: buy at the lower band, sell at the upper (or middle) band"
    uses_ohlcv = False
    params_model = BollingerParams

    @property
    def min_candles(self) -> int:
        return self.params.period

    def decide(self, close: float, bands: BandValues) -> Signal:
        p = self.params
        middle, upper, lower = bands
        width = upper - lower
        percent_b = (close - lower) / width if width > 0.0 else 0.5
        meta = {
            "close": close,
            "middle": middle,
            "upper": upper,
            "lower": lower,
            "percent_b": percent_b,
        }
        if close <= lower:
            return Signal(
                action=SignalAction.BUY,
                reason=f"close {close:.8g} at or below lower band {lower:.8g} (BB {p.period}, {p.num_std:g})",
                metadata=meta,
            )
        target = upper if p.exit_at == "upper" else middle
        if close >= target:
            return Signal(
                action=SignalAction.SELL,
                reason=f"close {close:.8g} at or above {p.exit_at} band {target:.8g}",
                metadata=meta,
            )
        return Signal(
            action=SignalAction.HOLD,
            reason=f"close {close:.8g} inside bands {lower:.8g} .. {upper:.8g}",
            metadata=meta,
        )

    def analyze_closes(self, closes: ArrayLike) -> Signal:
        x = as_float_array(closes)
        if x.size < self.min_candles:
            return self.not_enough(x.size)
        bands = bollinger(x[-self.params.period :], self.params.period, self.params.num_std)
        last = BandValues(float(bands.middle[-1]), float(bands.upper[-1]), float(bands.lower[-1]))
        return self.decide(float(x[-1]), last)

    def evaluator(self) -> BollingerEvaluator:
        return BollingerEvaluator(self)


class BollingerEvaluator(StrategyEvaluator[BollingerStrategy]):
    def __init__(self, strategy: BollingerStrategy) -> None:
        super().__init__(strategy)
        self._bands = RollingBands(strategy.params.period, strategy.params.num_std)

    def _seed(self, bars: Bars) -> None:
        closes = bars.close
        self._bands.seed(closes)

    def _step(self, bar: Bar) -> Signal:
        close = bar.close
        bands = self._bands.update(close)
        if bands is None:
            return self.strategy.not_enough(self.count)
        return self.strategy.decide(close, bands)
