"""MACD, the stochastic oscillator and the stochastic RSI: vectorised and incremental.

Definitions are TA-Lib's (its ``MACD``, ``STOCH``/``STOCHF`` with SMA smoothing and
``STOCHRSI``), which tests use as the oracle to 1e-9 relative:

- MACD: ``EMA(fast) - EMA(slow)`` where both EMAs start at index ``slow - 1``: the slow
  one seeded with the SMA of the first ``slow`` values, the fast one with the SMA of the
  ``fast`` values ending there (not of the first ``fast`` values). The signal line is an
  EMA of the MACD seeded with the SMA of its first ``signal`` values.
- Stochastic: ``%K_fast = 100 * (close - lowest low) / (highest high - lowest low)`` over
  ``k_period`` candles, ``%K = SMA(%K_fast, k_smooth)``, ``%D = SMA(%K, d_smooth)``.
  ``k_smooth = 1`` is the "fast" stochastic. Both lines are NaN (None) until ``%D`` is
  defined, as TA-Lib reports them.
- Stochastic RSI: the stochastic of Wilder's RSI (RSI as high, low and close).

One deliberate difference: where the window has no range %K_fast is 50, not TA-Lib's 0
(a window without movement is neither overbought nor oversold; the same choice as the
RSI of a window without movement, docs/strategies.md). "No range" is a range below
1e-10 of the level: on a price plateau the RSI is mathematically constant but its
computed values differ in the last bits, and a stochastic of that rounding noise would
swing between 0 and 100 on nothing (TA-Lib's STOCHRSI does).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from shared.strategies.indicators import (
    EMA,
    ArrayLike,
    FloatArray,
    RollingExtreme,
    RollingSum,
    WilderRSI,
    as_float_array,
    ema,
    nan_sma,
    rolling_max,
    rolling_min,
    smooth,
    wilder_rsi,
)

NEUTRAL = 50.0
NO_RANGE = 1e-10  # a window's range below this fraction of its level is no range


class MACDLines(NamedTuple):
    macd: FloatArray
    signal: FloatArray
    hist: FloatArray


class MACDValues(NamedTuple):
    macd: float
    signal: float
    hist: float


def _check_macd(fast: int, slow: int, signal: int) -> None:
    if not 1 <= fast < slow or signal < 1:
        raise ValueError(f"MACD needs 1 <= fast < slow and signal >= 1, got {fast}/{slow}/{signal}")


def macd_warmup_index(slow: int, signal: int) -> int:
    """Index of the first signal value."""
    return slow + signal - 2


def _macd_line(x: FloatArray, fast: int, slow: int) -> FloatArray:
    out = np.full(x.size, np.nan)
    if x.size < slow:
        return out
    slow_line = ema(x, slow)
    fast_line = np.full(x.size, np.nan)
    seed = float(x[slow - fast : slow].mean())
    fast_line[slow - 1] = seed
    fast_line[slow:] = smooth(x[slow:], 2.0 / (fast + 1), seed)
    out[slow - 1 :] = fast_line[slow - 1 :] - slow_line[slow - 1 :]
    return out


def macd(values: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> MACDLines:
    """MACD, signal and histogram; the MACD from index ``slow - 1``, the others from
    ``slow + signal - 2`` (TA-Lib reports all three from there)."""
    _check_macd(fast, slow, signal)
    x = as_float_array(values)
    line = _macd_line(x, fast, slow)
    sig = np.full(x.size, np.nan)
    if x.size >= slow:
        sig[slow - 1 :] = ema(line[slow - 1 :], signal)
    return MACDLines(line, sig, line - sig)


class MACD:
    """Incremental MACD: ``update(x)`` returns :class:`MACDValues` once the signal line
    is defined (``slow + signal - 1`` values), else None."""

    __slots__ = ("_fast", "_first", "_signal", "_slow", "fast", "signal", "slow", "value")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_macd(fast, slow, signal)
        self.fast, self.slow, self.signal = fast, slow, signal
        self.reset()

    def reset(self) -> None:
        self._first: list[float] = []  # the first ``slow`` values, until both EMAs start
        self._fast: float | None = None
        self._slow: float | None = None
        self._signal = EMA(self.signal)
        self.value: MACDValues | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> MACDValues | None:
        if self._fast is None or self._slow is None:
            first = self._first
            first.append(x)
            if len(first) < self.slow:
                return None
            self._slow = sum(first) / self.slow
            self._fast = sum(first[-self.fast :]) / self.fast
            self._first = []
        else:
            self._fast += 2.0 / (self.fast + 1) * (x - self._fast)
            self._slow += 2.0 / (self.slow + 1) * (x - self._slow)
        line = self._fast - self._slow
        sig = self._signal.update(line)
        self.value = None if sig is None else MACDValues(line, sig, line - sig)
        return self.value

    def seed(self, values: ArrayLike) -> MACDValues | None:
        """Replace the state with the one after ``values`` (vectorised)."""
        self.reset()
        x = as_float_array(values)
        if x.size < self.slow:
            for v in x.tolist():
                self.update(v)
            return self.value
        slow_line = ema(x, self.slow)
        line = _macd_line(x, self.fast, self.slow)
        self._slow = float(slow_line[-1])
        self._fast = float(line[-1]) + self._slow
        sig = self._signal.seed(line[self.slow - 1 :])
        last = float(line[-1])
        self.value = None if sig is None else MACDValues(last, sig, last - sig)
        return self.value


class StochLines(NamedTuple):
    k: FloatArray
    d: FloatArray


class StochValues(NamedTuple):
    k: float
    d: float


def _check_stoch(k_period: int, k_smooth: int, d_smooth: int) -> None:
    if min(k_period, k_smooth, d_smooth) < 1:
        raise ValueError(f"stochastic periods must be >= 1, got {k_period}/{k_smooth}/{d_smooth}")


def fast_k(close: float, highest: float, lowest: float) -> float:
    """Raw %K of ``close`` in the range [lowest, highest]; 50 when there is no range."""
    span = highest - lowest
    if span > NO_RANGE * max(abs(highest), abs(lowest)):
        return 100.0 * (close - lowest) / span
    return NEUTRAL


def stochastic(
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    k_period: int = 14,
    k_smooth: int = 3,
    d_smooth: int = 3,
) -> StochLines:
    """%K and %D, NaN until %D is defined (index ``k_period + k_smooth + d_smooth - 3``)."""
    _check_stoch(k_period, k_smooth, d_smooth)
    h, lo, c = as_float_array(high), as_float_array(low), as_float_array(close)
    if not h.size == lo.size == c.size:
        raise ValueError("high, low and close must have the same length")
    hh, ll = rolling_max(h, k_period), rolling_min(lo, k_period)
    span = hh - ll
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.maximum(np.abs(hh), np.abs(ll))
        raw = np.where(span > NO_RANGE * level, 100.0 * (c - ll) / span, NEUTRAL)
    raw[np.isnan(span)] = np.nan
    k = nan_sma(raw, k_smooth)
    d = nan_sma(k, d_smooth)
    k[np.isnan(d)] = np.nan
    return StochLines(k, d)


class Stochastic:
    """Incremental stochastic: ``update(high, low, close)`` returns :class:`StochValues`
    once %D is defined, else None."""

    __slots__ = ("_d", "_extreme", "_k", "value")

    def __init__(self, k_period: int = 14, k_smooth: int = 3, d_smooth: int = 3) -> None:
        _check_stoch(k_period, k_smooth, d_smooth)
        self._extreme = RollingExtreme(k_period)
        self._k = RollingSum(k_smooth)
        self._d = RollingSum(d_smooth)
        self.value: StochValues | None = None

    def reset(self) -> None:
        self._extreme.reset()
        self._k.reset()
        self._d.reset()
        self.value = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, high: float, low: float, close: float) -> StochValues | None:
        extreme = self._extreme.update(high, low)
        if extreme is None:
            return None
        k = self._k.update(fast_k(close, extreme[0], extreme[1]))
        if k is None:
            return None
        d = self._d.update(k)
        self.value = None if d is None else StochValues(k, d)
        return self.value

    def seed(self, high: ArrayLike, low: ArrayLike, close: ArrayLike) -> StochValues | None:
        """Replace the state with the one after the given candles (the windows are
        exact: only the last candles they can reach are fed)."""
        self.reset()
        reach = self._extreme.period + self._k.period + self._d.period - 2
        for h, lo, c in zip(
            as_float_array(high)[-reach:].tolist(),
            as_float_array(low)[-reach:].tolist(),
            as_float_array(close)[-reach:].tolist(),
            strict=True,
        ):
            self.update(h, lo, c)
        return self.value


def stoch_rsi(
    closes: ArrayLike,
    rsi_period: int = 14,
    k_period: int = 14,
    k_smooth: int = 3,
    d_smooth: int = 3,
) -> StochLines:
    """Stochastic of Wilder's RSI. TA-Lib's ``STOCHRSI(t, fastk, fastd)`` is
    ``stoch_rsi(t, fastk, 1, fastd)``; TradingView's "Stoch RSI 3 3 14 14" is the default."""
    rsi = wilder_rsi(closes, rsi_period)
    out = StochLines(np.full(rsi.size, np.nan), np.full(rsi.size, np.nan))
    if rsi.size > rsi_period:
        tail = rsi[rsi_period:]
        lines = stochastic(tail, tail, tail, k_period, k_smooth, d_smooth)
        out.k[rsi_period:] = lines.k
        out.d[rsi_period:] = lines.d
    return out


class StochRSI:
    """Incremental stochastic RSI: ``update(close)`` returns :class:`StochValues` or None."""

    __slots__ = ("_rsi", "_stoch", "value")

    def __init__(
        self, rsi_period: int = 14, k_period: int = 14, k_smooth: int = 3, d_smooth: int = 3
    ) -> None:
        self._rsi = WilderRSI(rsi_period)
        self._stoch = Stochastic(k_period, k_smooth, d_smooth)
        self.value: StochValues | None = None

    def reset(self) -> None:
        self._rsi.reset()
        self._stoch.reset()
        self.value = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, close: float) -> StochValues | None:
        rsi = self._rsi.update(close)
        if rsi is None:
            return None
        self.value = self._stoch.update(rsi, rsi, rsi)
        return self.value

    def seed(self, closes: ArrayLike) -> StochValues | None:
        """Replace the state with the one after ``closes``: the RSI vectorised, then the
        stochastic fed the last RSI values its windows can still reach."""
        self.reset()
        x = as_float_array(closes)
        self._rsi.seed(x)
        stoch = self._stoch
        reach = stoch._extreme.period + stoch._k.period + stoch._d.period - 2
        rsi = wilder_rsi(x, self._rsi.period)
        defined = rsi[~np.isnan(rsi)][-reach:]
        for v in defined.tolist():
            self.value = stoch.update(v, v, v)
        return self.value
