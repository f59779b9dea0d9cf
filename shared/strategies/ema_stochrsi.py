"""``ema_stochrsi``: the "3 EMA + Stoch RSI + ATR" strategy.

Trend filter: fast EMA > middle EMA > slow EMA (all rising in order). Entry: BUY when,
inside that trend, the Stoch RSI %K crosses above %D from below ``oversold`` (a pullback
ending). Exit: SELL when the trend breaks (the fast EMA closes below the middle one).
Every signal carries ``metadata["atr"]`` (ATR of ``atr_period``): set the bot's
``stop_loss_atr`` / ``take_profit_atr`` (e.g. 3 and 2) for the usual ATR stop-loss and
take-profit (:mod:`shared.strategies.exits`). Reads whole candles (the ATR needs high
and low).
"""

from __future__ import annotations

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
    CONVERGED,
    EMA,
    converged_after,
    ema,
    ema_warmup,
    wilder_warmup,
)
from shared.strategies.oscillators import StochRSI, StochValues, stoch_rsi


class EMAStochRSIParams(StrategyParams):
    ema_fast: int = Field(8, ge=1, le=500, description="fast EMA length in candles")
    ema_mid: int = Field(14, ge=2, le=500, description="middle EMA length; above ema_fast")
    ema_slow: int = Field(50, ge=3, le=1000, description="slow EMA length; above ema_mid")
    rsi_period: int = Field(14, ge=2, le=200, description="RSI length of the Stoch RSI")
    stoch_period: int = Field(14, ge=1, le=200, description="stochastic window over the RSI")
    k_smooth: int = Field(3, ge=1, le=50, description="%K smoothing (SMA)")
    d_smooth: int = Field(3, ge=1, le=50, description="%D: SMA of %K")
    oversold: float = Field(
        20.0, gt=0, lt=100, description="BUY when %K crosses above %D from below this"
    )
    atr_period: int = Field(14, ge=1, le=500, description="ATR length reported for ATR stops")

    @field_validator("ema_mid")
    @classmethod
    def _mid_above_fast(cls, value: int, info: ValidationInfo) -> int:
        fast = info.data.get("ema_fast")
        if fast is not None and value <= fast:
            raise ValueError(f"must be greater than ema_fast ({fast})")
        return value

    @field_validator("ema_slow")
    @classmethod
    def _slow_above_mid(cls, value: int, info: ValidationInfo) -> int:
        mid = info.data.get("ema_mid")
        if mid is not None and value <= mid:
            raise ValueError(f"must be greater than ema_mid ({mid})")
        return value


class EMAStochRSIStrategy(TradingStrategy[EMAStochRSIParams]):
    name = "ema_stochrsi"
    title = "3 EMA trend + Stoch RSI entry (use ATR stop-loss/take-profit)"
    params_model = EMAStochRSIParams

    @property
    def atr_period(self) -> int:
        return self.params.atr_period

    @property
    def min_candles(self) -> int:
        p = self.params
        stoch_first = p.rsi_period + p.stoch_period + p.k_smooth + p.d_smooth - 2
        return max(p.ema_slow, stoch_first) + 1

    @property
    def signal_warmup(self) -> int:
        p = self.params
        # %K = 100 * (rsi - lowest) / range multiplies the RSI's residual seed error by
        # 100 / range: the RSI converges 1e4 further, so %K holds 1e-9 while the window
        # spans at least 0.01 RSI points (docs/strategies.md, "Warm-up").
        rsi = p.rsi_period + 1 + converged_after(1.0 / p.rsi_period, CONVERGED * 1e-4)
        stoch = rsi + p.stoch_period + p.k_smooth + p.d_smooth
        return max(ema_warmup(p.ema_slow), stoch, wilder_warmup(p.atr_period)) + 1

    def decide(
        self, emas: tuple[float, float, float], prev: StochValues | None, now: StochValues
    ) -> Signal:
        p = self.params
        fast, mid, slow = emas
        meta = {"ema_fast": fast, "ema_mid": mid, "ema_slow": slow, "k": now.k, "d": now.d}
        trend = fast > mid > slow
        label = (
            f"EMA {fast:.8g}/{mid:.8g}/{slow:.8g} ({'up' if trend else 'no'} trend), "
            f"StochRSI K {now.k:.2f} D {now.d:.2f}"
        )
        if prev is not None:
            meta["prev_k"], meta["prev_d"] = prev
            if trend and prev.k <= prev.d and now.k > now.d and prev.k < p.oversold:
                return Signal(
                    action=SignalAction.BUY, reason=f"K crossed above D: {label}", metadata=meta
                )
        if fast < mid:
            return Signal(action=SignalAction.SELL, reason=f"trend broke: {label}", metadata=meta)
        return Signal(action=SignalAction.HOLD, reason=label, metadata=meta)

    def analyze_bars(self, bars: Bars) -> Signal:
        if bars.size < self.min_candles:
            return self.not_enough(bars.size)
        p = self.params
        x = bars.close
        emas = tuple(float(ema(x, n)[-1]) for n in (p.ema_fast, p.ema_mid, p.ema_slow))
        lines = stoch_rsi(x, p.rsi_period, p.stoch_period, p.k_smooth, p.d_smooth)
        now = StochValues(float(lines.k[-1]), float(lines.d[-1]))
        prev = StochValues(float(lines.k[-2]), float(lines.d[-2]))
        return self.decide((emas[0], emas[1], emas[2]), prev, now)

    def evaluator(self) -> EMAStochRSIEvaluator:
        return EMAStochRSIEvaluator(self)


class EMAStochRSIEvaluator(StrategyEvaluator[EMAStochRSIStrategy]):
    def __init__(self, strategy: EMAStochRSIStrategy) -> None:
        super().__init__(strategy)
        p = strategy.params
        self._emas = (EMA(p.ema_fast), EMA(p.ema_mid), EMA(p.ema_slow))
        self._stoch = StochRSI(p.rsi_period, p.stoch_period, p.k_smooth, p.d_smooth)

    def _seed(self, bars: Bars) -> None:
        for e in self._emas:
            e.seed(bars.close)
        self._stoch.seed(bars.close)

    def _step(self, bar: Bar) -> Signal:
        close = bar.close
        values = [e.update(close) for e in self._emas]
        prev = self._stoch.value
        now = self._stoch.update(close)
        fast, mid, slow = values
        if fast is None or mid is None or slow is None or now is None or self.count < self._min:
            return self.strategy.not_enough(self.count)
        return self.strategy.decide((fast, mid, slow), prev, now)
