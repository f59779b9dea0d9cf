"""``ema_cross_trend``: the EMA crossover with a higher-timeframe EMA trend filter (a
multi-timeframe strategy: e.g. a 5m bot that only buys while the 1h close is above the
1h EMA).

BUY when the fast EMA crosses above the slow one on the bot's interval and the latest
``trend_interval`` candle closed above its EMA(``trend_period``); SELL when the fast EMA
crosses below (whatever the trend). The bot reads two series: its own, and
``trend_interval`` of the same symbol (declared in :attr:`informative`).

Which trend candle a decision sees: the newest one that closed **before the decided
candle opened**. A 1h candle closes at the same instant as the last 5m candle inside
it; it is first used by the next 5m candle, so a decision never depends on which of two
simultaneous closes arrived first (a runner, its adopter and a backtest agree) and never
looks ahead. ``analyze_bars`` (the API), and an evaluator never handed the trend series
(a backtest feeds one series), rebuild the trend candles from the bot's own candles (a
higher-timeframe candle's close is the close of its last lower-timeframe candle) and
apply the same rule.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from shared.binance.intervals import interval_ms, is_interval, next_open_time, open_time_of
from shared.messages import Candle
from shared.strategies.bars import Bar, Bars
from shared.strategies.base import (
    Signal,
    SignalAction,
    StrategyEvaluator,
    StrategyParams,
    TradingStrategy,
)
from shared.strategies.indicators import EMA, ema, ema_warmup


class EMATrendParams(StrategyParams):
    fast_period: int = Field(9, ge=1, le=500, description="fast EMA length in candles")
    slow_period: int = Field(
        21, ge=2, le=1000, description="slow EMA length; greater than fast_period"
    )
    trend_interval: str = Field(
        "1h", description="interval of the trend filter's series (longer than the bot's own)"
    )
    trend_period: int = Field(
        50, ge=1, le=500, description="EMA length of the trend filter, in trend candles"
    )
    sell_on_cross_down: bool = Field(True, description="emit SELL when the fast EMA crosses below")

    @field_validator("slow_period")
    @classmethod
    def _slower_than_fast(cls, value: int, info: ValidationInfo) -> int:
        fast = info.data.get("fast_period")
        if fast is not None and value <= fast:
            raise ValueError(f"must be greater than fast_period ({fast})")
        return value

    @field_validator("trend_interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        if not is_interval(value):
            raise ValueError(f"unknown kline interval {value!r}")
        return value


class EMATrendStrategy(TradingStrategy[EMATrendParams]):
    name = "ema_cross_trend"
    title = "EMA crossover, buying only while a higher timeframe's close is above its EMA"
    params_model = EMATrendParams

    @property
    def signal_warmup(self) -> int:
        return ema_warmup(self.params.slow_period) + 1

    @property
    def min_candles(self) -> int:
        return self.params.slow_period + 1

    @property
    def informative(self) -> dict[str, int]:
        return {self.params.trend_interval: ema_warmup(self.params.trend_period) + 1}

    def decide(
        self,
        prev: tuple[float, float] | None,
        fast: float,
        slow: float,
        trend: tuple[float, float] | None,
    ) -> Signal:
        """``trend``: the (close, EMA) of the newest trend candle closed before the
        decided candle opened (None while the trend EMA is not ready)."""
        p = self.params
        diff = fast - slow
        meta = {"fast_ema": fast, "slow_ema": slow}
        label = f"EMA({p.fast_period}) {fast:.8g} vs EMA({p.slow_period}) {slow:.8g}"
        if trend is not None:
            meta["trend_close"], meta["trend_ema"] = trend
            up = trend[0] > trend[1]
            label += (
                f"; {p.trend_interval} close {trend[0]:.8g} {'above' if up else 'at/below'} "
                f"EMA({p.trend_period}) {trend[1]:.8g}"
            )
        else:
            up = False
            label += f"; {p.trend_interval} EMA({p.trend_period}) not ready"
        if prev is not None:
            prev_diff = prev[0] - prev[1]
            meta["prev_fast_ema"], meta["prev_slow_ema"] = prev
            if prev_diff <= 0.0 < diff:
                if up:
                    return Signal(
                        action=SignalAction.BUY, reason=f"crossed above: {label}", metadata=meta
                    )
                return Signal(
                    action=SignalAction.HOLD,
                    reason=f"crossed above against the trend: {label}",
                    metadata=meta,
                )
            if p.sell_on_cross_down and prev_diff >= 0.0 > diff:
                return Signal(
                    action=SignalAction.SELL, reason=f"crossed below: {label}", metadata=meta
                )
        return Signal(action=SignalAction.HOLD, reason=label, metadata=meta)

    def trend_bars(self, bars: Bars) -> Bars:
        """The trend interval's candles rebuilt from ``bars`` (a lower interval's): one
        per bar that closes a trend candle, with its close (only the close is read)."""
        interval = self.params.trend_interval
        ends_at = bars.close_time + 1
        if interval == "1M":  # calendar months: step by step
            mask = np.asarray(
                [
                    int(e) == next_open_time(interval, open_time_of(interval, int(e) - 1))
                    for e in ends_at
                ],
                dtype=bool,
            )
        else:  # fixed length, aligned on the epoch (weeks on Mondays)
            length = interval_ms(interval)
            mask = (ends_at - open_time_of(interval, 0)) % length == 0
        c = bars.close[mask]
        close_time = bars.close_time[mask]
        opens = np.asarray([open_time_of(interval, int(t)) for t in close_time], dtype=np.int64)
        return Bars(opens, close_time, c, c, c, c, np.zeros(c.size))

    def analyze_bars(self, bars: Bars) -> Signal:
        if bars.size < self.min_candles:
            return self.not_enough(bars.size)
        fast = ema(bars.close, self.params.fast_period)[-2:].tolist()
        slow = ema(bars.close, self.params.slow_period)[-2:].tolist()
        prev = None if math.isnan(slow[0]) else (fast[0], slow[0])
        htf = self.trend_bars(bars)
        seen = htf.close[htf.close_time < int(bars.open_time[-1])]
        trend = None
        if seen.size >= self.params.trend_period:
            trend = (float(seen[-1]), float(ema(seen, self.params.trend_period)[-1]))
        return self.decide(prev, fast[1], slow[1], trend)

    def evaluator(self) -> EMATrendEvaluator:
        return EMATrendEvaluator(self)


class EMATrendEvaluator(StrategyEvaluator[EMATrendStrategy]):
    def __init__(self, strategy: EMATrendStrategy) -> None:
        super().__init__(strategy)
        p = strategy.params
        self._fast = EMA(p.fast_period)
        self._slow = EMA(p.slow_period)
        self._interval = p.trend_interval
        self._trend = EMA(p.trend_period)
        self._trend_close: float | None = None
        self._trend_last_open: int | None = None  # newest trend candle received
        self._waiting: deque[tuple[int, float]] = deque()  # (close time, close), not yet used
        # Until the trend series is handed over (seed_informative / on_informative), the
        # trend candles are rebuilt from the bot's own candles, as analyze_bars does (a
        # backtest feeds one series).
        self._own_trend = True
        self._trend_len = 0 if p.trend_interval == "1M" else interval_ms(p.trend_interval)
        self._trend_off = open_time_of(p.trend_interval, 0)

    def _check(self, interval: str) -> None:
        if interval != self._interval:
            raise TypeError(
                f"strategy {self.strategy.name} reads the {self._interval} series, not {interval}"
            )

    def seed_informative(self, interval: str, bars: Bars) -> None:
        self._check(interval)
        self._own_trend = False
        self._trend.reset()
        self._trend_close = None
        self._waiting = deque(zip(bars.close_time.tolist(), bars.close.tolist(), strict=True))
        self._trend_last_open = int(bars.open_time[-1]) if bars.size else None

    def on_informative(self, interval: str, candle: Candle | Bar) -> None:
        self._check(interval)
        bar = Bar.of(candle) if isinstance(candle, Candle) else candle
        if self._trend_last_open is not None and bar.open_time <= self._trend_last_open:
            return  # already received (a replay after a restart)
        if not math.isfinite(bar.close):
            raise ValueError(f"close must be finite, got {bar}")
        if self._own_trend:  # the real series from now on, not the rebuilt one
            self._own_trend = False
            self._waiting = deque(x for x in self._waiting if x[0] < bar.open_time)
        self._trend_last_open = bar.open_time
        self._waiting.append((bar.close_time, bar.close))

    def _use_trend_before(self, open_time: int) -> tuple[float, float] | None:
        """Apply the trend candles that closed before ``open_time``; the trend now."""
        waiting = self._waiting
        if waiting and waiting[0][0] < open_time:
            closes: list[float] = []
            while waiting and waiting[0][0] < open_time:
                closes.append(waiting.popleft()[1])
            if self._trend.value is None and self._trend_close is None:
                self._trend.seed(closes)  # vectorised: a fresh seed of many candles
            else:
                for x in closes:
                    self._trend.update(x)
            self._trend_close = closes[-1]
        value = self._trend.value
        if value is None or self._trend_close is None:
            return None
        return (self._trend_close, value)

    def _closes_trend(self, close_time: int) -> bool:
        end = close_time + 1
        if self._trend_len:
            return (end - self._trend_off) % self._trend_len == 0
        return end == next_open_time(self._interval, open_time_of(self._interval, close_time))

    def _seed(self, bars: Bars) -> None:
        closes = bars.close
        self._fast.seed(closes)
        self._slow.seed(closes)
        if self._own_trend:
            self._trend.reset()
            self._trend_close = None
            trend = self.strategy.trend_bars(bars)
            self._waiting = deque(zip(trend.close_time.tolist(), trend.close.tolist(), strict=True))

    def _step(self, bar: Bar) -> Signal:
        close = bar.close
        pf, ps = self._fast.value, self._slow.value
        fast = self._fast.update(close)
        slow = self._slow.update(close)
        trend = self._use_trend_before(bar.open_time)
        if self._own_trend and self._closes_trend(bar.close_time):
            self._waiting.append((bar.close_time, close))
        if fast is None or slow is None or self.count < self._min:
            return self.strategy.not_enough(self.count)
        prev = None if pf is None or ps is None else (pf, ps)
        return self.strategy.decide(prev, fast, slow, trend)
