"""``donchian_breakout``: the turtle traders' channel breakout, as a botfleet plugin.

BUY when the close breaks above the highest high of the previous ``entry_period``
candles; SELL when it breaks below the lowest low of the previous ``exit_period``
candles. Reads whole candles (high and low), keeps O(1) state per candle, and declares
its warm-up: the channels are exact windows, so it needs only ``max(periods) + 1``
candles for itself (the base class adds what the ATR it reports needs).
"""

from __future__ import annotations

from pydantic import Field

from shared.strategies import (
    Bar,
    Bars,
    Signal,
    SignalAction,
    StrategyEvaluator,
    StrategyParams,
    TradingStrategy,
)
from shared.strategies.indicators import RollingExtreme, rolling_max, rolling_min


class DonchianParams(StrategyParams):
    entry_period: int = Field(20, ge=2, le=1000, description="breakout channel length (highs)")
    exit_period: int = Field(10, ge=2, le=1000, description="exit channel length (lows)")


class DonchianBreakoutStrategy(TradingStrategy[DonchianParams]):
    name = "donchian_breakout"
    title = "Donchian breakout: buy above the N-candle high, sell below the M-candle low"
    params_model = DonchianParams

    @property
    def min_candles(self) -> int:
        return max(self.params.entry_period, self.params.exit_period) + 1

    def decide(self, close: float, upper: float, lower: float) -> Signal:
        meta = {"close": close, "upper": upper, "lower": lower}
        if close > upper:
            return Signal(
                action=SignalAction.BUY,
                reason=f"close {close:.8g} > high {upper:.8g}",
                metadata=meta,
            )
        if close < lower:
            return Signal(
                action=SignalAction.SELL,
                reason=f"close {close:.8g} < low {lower:.8g}",
                metadata=meta,
            )
        return Signal(
            action=SignalAction.HOLD, reason=f"inside {lower:.8g} .. {upper:.8g}", metadata=meta
        )

    def analyze_bars(self, bars: Bars) -> Signal:
        if bars.size < self.min_candles:
            return self.not_enough(bars.size)
        p = self.params
        upper = float(rolling_max(bars.high[:-1], p.entry_period)[-1])
        lower = float(rolling_min(bars.low[:-1], p.exit_period)[-1])
        return self.decide(float(bars.close[-1]), upper, lower)

    def evaluator(self) -> DonchianEvaluator:
        return DonchianEvaluator(self)


class DonchianEvaluator(StrategyEvaluator[DonchianBreakoutStrategy]):
    def __init__(self, strategy: DonchianBreakoutStrategy) -> None:
        super().__init__(strategy)
        self._entry = RollingExtreme(strategy.params.entry_period)
        self._exit = RollingExtreme(strategy.params.exit_period)
        self._channels: tuple[float, float] | None = None  # of the candles before this one

    def _seed(self, bars: Bars) -> None:
        self._entry.reset()
        self._exit.reset()
        self._channels = None
        reach = max(self.strategy.params.entry_period, self.strategy.params.exit_period)
        tail = bars[-reach:] if bars.size > reach else bars
        for i in range(tail.size):
            self._push(tail.bar(i))

    def _push(self, bar: Bar) -> None:
        entry = self._entry.update(bar.high, bar.low)
        exit_ = self._exit.update(bar.high, bar.low)
        self._channels = None if entry is None or exit_ is None else (entry[0], exit_[1])

    def _step(self, bar: Bar) -> Signal:
        channels = self._channels
        self._push(bar)
        if channels is None or self.count < self._min:
            return self.strategy.not_enough(self.count)
        return self.strategy.decide(bar.close, channels[0], channels[1])
