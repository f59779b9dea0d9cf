"""Technical indicators: vectorised over a whole series, and incremental state objects.

Definitions are the ones TA-Lib and the common technical-analysis libraries use:

- SMA: arithmetic mean of the last ``n`` values.
- EMA: seeded with the SMA of the first ``n`` values (at index ``n - 1``), then
  ``ema = ema_prev + alpha * (x - ema_prev)`` with ``alpha = 2 / (n + 1)``.
- Wilder's RSI (J. Welles Wilder, *New Concepts in Technical Trading Systems*, 1978):
  average gain and loss seeded with the simple mean of the first ``n`` changes (the
  first RSI value is at index ``n``), then ``avg = (avg_prev * (n - 1) + x) / n``;
  ``RSI = 100 - 100 / (1 + avg_gain / avg_loss)``; 100 when there was no loss and 50
  when the price did not move at all.
- Bollinger bands: middle = SMA(n), bands = middle +/- k * population standard
  deviation (``ddof=0``, as TA-Lib's BBANDS) of the same ``n`` values.

The vectorised functions take float64 arrays, return arrays of the same length and put
NaN where a value is not defined yet. The incremental objects (:class:`EMA`,
:class:`WilderRSI`, :class:`RollingBands`) hold O(1) state, are seeded from history
with ``seed(values)`` and take one value at a time with ``update(value)``; they agree
with the vectorised functions to about 1e-12 relative.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = FloatArray | Sequence[float]

# Block length of the blocked linear recurrence below. 64 keeps the per-block matrix
# small (32 KiB) and the decay factors far from underflow for every sane period.
_BLOCK = 64


def as_float_array(values: ArrayLike) -> FloatArray:
    """``values`` as a one-dimensional float64 array (no copy when it already is one)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a one-dimensional series, got shape {arr.shape}")
    return arr


def _check_period(period: int) -> None:
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")


@functools.lru_cache(maxsize=256)
def _block_weights(alpha: float, size: int) -> tuple[FloatArray, FloatArray]:
    """Transposed in-block weight matrix and carry decay of :func:`smooth` (read-only)."""
    beta = 1.0 - alpha
    k = np.arange(size)
    lag = k[:, None] - k[None, :]
    weights = np.where(lag >= 0, alpha * beta ** np.maximum(lag, 0), 0.0)
    weights_t: FloatArray = np.ascontiguousarray(weights.T, dtype=np.float64)
    decay: FloatArray = np.power(beta, k + 1.0, dtype=np.float64)
    weights_t.flags.writeable = False
    decay.flags.writeable = False
    return weights_t, decay


def smooth(x: FloatArray, alpha: float, initial: float) -> FloatArray:
    """``y[i] = (1 - alpha) * y[i-1] + alpha * x[i]`` with ``y[-1] = initial``, vectorised.

    The recurrence is split into blocks of ``_BLOCK`` values: inside a block each output
    is a weighted sum of the block's inputs (one matrix product for all blocks), plus
    the carried-in value of the previous block times ``(1 - alpha) ** (m + 1)``. Only
    the carries (one per block) are computed in a Python loop. Errors do not grow:
    each carry is damped by ``(1 - alpha) ** _BLOCK``.
    """
    n = x.size
    if n == 0:
        return np.empty(0, dtype=np.float64)
    size = min(_BLOCK, n)
    pad = (-n) % size
    blocks = (np.concatenate([x, np.zeros(pad)]) if pad else x).reshape(-1, size)
    weights_t, decay = _block_weights(alpha, size)
    local = blocks @ weights_t
    carries = np.empty(blocks.shape[0], dtype=np.float64)
    carry = float(initial)
    block_decay = float(decay[-1])
    for b, last in enumerate(local[:, -1].tolist()):
        carries[b] = carry
        carry = last + block_decay * carry
    out: FloatArray = (local + carries[:, None] * decay[None, :]).ravel()[:n]
    return out


def sma(values: ArrayLike, period: int) -> FloatArray:
    """Simple moving average; NaN for the first ``period - 1`` values."""
    _check_period(period)
    x = as_float_array(values)
    out = np.full(x.size, np.nan)
    if x.size >= period:
        windows = np.lib.stride_tricks.sliding_window_view(x, period)
        out[period - 1 :] = windows.mean(axis=1)
    return out


def ema(values: ArrayLike, period: int) -> FloatArray:
    """EMA seeded with the SMA of the first ``period`` values; NaN before index ``period - 1``."""
    _check_period(period)
    x = as_float_array(values)
    out = np.full(x.size, np.nan)
    if x.size < period:
        return out
    seed = float(x[:period].mean())
    out[period - 1] = seed
    out[period:] = smooth(x[period:], 2.0 / (period + 1), seed)
    return out


class WilderAverages(NamedTuple):
    """Wilder-smoothed average gain and loss, aligned with the closes (NaN before ``period``)."""

    gain: FloatArray
    loss: FloatArray


def wilder_averages(closes: ArrayLike, period: int) -> WilderAverages:
    """Average gain and loss of Wilder's RSI for every close."""
    _check_period(period)
    x = as_float_array(closes)
    gain = np.full(x.size, np.nan)
    loss = np.full(x.size, np.nan)
    if x.size < period + 1:
        return WilderAverages(gain, loss)
    change = np.diff(x)
    up = np.maximum(change, 0.0)
    down = np.maximum(-change, 0.0)
    g0 = float(up[:period].mean())
    l0 = float(down[:period].mean())
    gain[period] = g0
    loss[period] = l0
    alpha = 1.0 / period
    gain[period + 1 :] = smooth(up[period:], alpha, g0)
    loss[period + 1 :] = smooth(down[period:], alpha, l0)
    return WilderAverages(gain, loss)


def rsi_from_averages(gain: FloatArray, loss: FloatArray) -> FloatArray:
    """RSI from average gain and loss: 100 when no loss, 50 when no move at all."""
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0.0, 100.0 * gain / total, 50.0)
    out[np.isnan(total)] = np.nan
    return out


def rsi_value(avg_gain: float, avg_loss: float) -> float:
    """Scalar twin of :func:`rsi_from_averages` (``100 * g / (g + l)`` is ``100 - 100/(1+RS)``)."""
    total = avg_gain + avg_loss
    return 100.0 * avg_gain / total if total > 0.0 else 50.0


def wilder_rsi(closes: ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's RSI; NaN for the first ``period`` closes."""
    averages = wilder_averages(closes, period)
    return rsi_from_averages(averages.gain, averages.loss)


class Bands(NamedTuple):
    middle: FloatArray
    upper: FloatArray
    lower: FloatArray


def bollinger(closes: ArrayLike, period: int = 20, num_std: float = 2.0) -> Bands:
    """Bollinger bands (population std, ``ddof=0``); NaN for the first ``period - 1`` closes."""
    _check_period(period)
    x = as_float_array(closes)
    middle = np.full(x.size, np.nan)
    width = np.full(x.size, np.nan)
    if x.size >= period:
        windows = np.lib.stride_tricks.sliding_window_view(x, period)
        middle[period - 1 :] = windows.mean(axis=1)
        width[period - 1 :] = num_std * windows.std(axis=1, ddof=0)
    return Bands(middle, middle + width, middle - width)


# --- incremental state objects -------------------------------------------------------


class EMA:
    """Incremental EMA: ``update(x)`` returns the EMA, or None until ``period`` values."""

    __slots__ = ("_alpha", "_count", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        _check_period(period)
        self.period = period
        self._alpha = 2.0 / (period + 1)
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._sum = 0.0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> float | None:
        value = self.value
        if value is not None:
            value += self._alpha * (x - value)
            self.value = value
            return value
        self._count += 1
        self._sum += x
        if self._count == self.period:
            self.value = self._sum / self.period
        return self.value

    def update_many(self, values: Sequence[float]) -> list[float | None]:
        """``update`` of each of ``values`` in turn, with the same arithmetic (so the
        same bits): what each returned."""
        out: list[float | None] = []
        i, n = 0, len(values)
        while self.value is None and i < n:
            out.append(self.update(values[i]))
            i += 1
        value = self.value
        if value is None or i == n:
            return out
        alpha = self._alpha
        append = out.append
        for x in values[i:]:
            value += alpha * (x - value)
            append(value)
        self.value = value
        return out

    def seed(self, values: ArrayLike) -> float | None:
        """Replace the state with the one after ``values`` (vectorised)."""
        self.reset()
        x = as_float_array(values)
        if x.size < self.period:
            for v in x.tolist():
                self.update(v)
            return self.value
        self._count = self.period
        self.value = float(ema(x, self.period)[-1])
        return self.value


class WilderRSI:
    """Incremental Wilder RSI: ``update(close)`` returns the RSI, or None until ``period + 1`` closes."""

    __slots__ = ("_count", "_prev", "avg_gain", "avg_loss", "period", "value")

    def __init__(self, period: int = 14) -> None:
        _check_period(period)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self._count = 0  # closes seen
        self._prev = 0.0
        self.avg_gain = 0.0  # sums of gains/losses during warm-up, averages after
        self.avg_loss = 0.0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, close: float) -> float | None:
        count = self._count
        self._count = count + 1
        if count == 0:
            self._prev = close
            return None
        change = close - self._prev
        self._prev = close
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        n = self.period
        if count > n:
            self.avg_gain += (gain - self.avg_gain) / n
            self.avg_loss += (loss - self.avg_loss) / n
        else:
            self.avg_gain += gain
            self.avg_loss += loss
            if count < n:
                return None
            self.avg_gain /= n
            self.avg_loss /= n
        self.value = rsi_value(self.avg_gain, self.avg_loss)
        return self.value

    def seed(self, closes: ArrayLike) -> float | None:
        """Replace the state with the one after ``closes`` (vectorised)."""
        self.reset()
        x = as_float_array(closes)
        if x.size < self.period + 1:
            for v in x.tolist():
                self.update(v)
            return self.value
        averages = wilder_averages(x, self.period)
        self._count = x.size
        self._prev = float(x[-1])
        self.avg_gain = float(averages.gain[-1])
        self.avg_loss = float(averages.loss[-1])
        self.value = rsi_value(self.avg_gain, self.avg_loss)
        return self.value


class BandValues(NamedTuple):
    middle: float
    upper: float
    lower: float


# A slid sum carries a rounding error of a few ulps of the largest magnitude it held
# since it was last computed exactly; when it has shrunk below this fraction of that
# peak (a crash leaving the window, a plateau after a storm) it is recomputed exactly.
_CANCELLED = 1e-4


class RollingBands:
    """Incremental Bollinger bands over the last ``period`` values.

    The window's mean and sum of squared deviations are slid in O(1) per value
    (Welford's update for a sliding window) and recomputed exactly from the window
    every ``period`` updates, or sooner when they shrank far below their peak (see
    ``_CANCELLED``), so rounding can neither drift nor cancel.
    """

    __slots__ = (
        "_m2",
        "_mean",
        "_peak",
        "_since_exact",
        "_window",
        "num_std",
        "period",
        "value",
    )

    def __init__(self, period: int = 20, num_std: float = 2.0) -> None:
        _check_period(period)
        self.period = period
        self.num_std = num_std
        self.reset()

    def reset(self) -> None:
        self._window: deque[float] = deque(maxlen=self.period)
        self._mean = 0.0
        self._m2 = 0.0
        self._since_exact = 0
        self._peak = (0.0, 0.0)
        self.value: BandValues | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def _exact(self) -> None:
        window = self._window
        mean = math.fsum(window) / len(window)
        self._mean = mean
        self._m2 = math.fsum((v - mean) * (v - mean) for v in window)
        self._since_exact = 0
        self._peak = (abs(mean), self._m2)

    def _publish(self) -> BandValues:
        var = self._m2 / self.period
        width = self.num_std * math.sqrt(var) if var > 0.0 else 0.0
        mean = self._mean
        self.value = BandValues(mean, mean + width, mean - width)
        return self.value

    def update(self, x: float) -> BandValues | None:
        window = self._window
        n = self.period
        if len(window) < n:
            window.append(x)
            if len(window) < n:
                return None
            self._exact()
            return self._publish()
        old = window[0]
        window.append(x)
        self._since_exact += 1
        if self._since_exact >= n:
            self._exact()
        else:
            mean = self._mean
            new_mean = mean + (x - old) / n
            m2 = self._m2 + (x - old) * (x - new_mean + old - mean)
            peak_mean, peak_m2 = self._peak
            peak_mean, peak_m2 = max(peak_mean, abs(new_mean)), max(peak_m2, m2)
            self._peak = (peak_mean, peak_m2)
            self._mean, self._m2 = new_mean, m2
            if m2 < _CANCELLED * peak_m2 or abs(new_mean) < _CANCELLED * peak_mean:
                self._exact()
        return self._publish()

    def seed(self, values: ArrayLike) -> BandValues | None:
        """Replace the state with the one after ``values`` (keeps only the last window)."""
        self.reset()
        x = as_float_array(values)
        tail = x[-self.period :].tolist()
        self._window.extend(tail)
        if len(self._window) < self.period:
            return None
        self._exact()
        return self._publish()


# --- weighted and rolling helpers (used by the oscillators and ranges modules) ---------


def wma(values: ArrayLike, period: int) -> FloatArray:
    """Linearly weighted moving average (weights 1..n, newest heaviest); NaN before ``period - 1``."""
    _check_period(period)
    x = as_float_array(values)
    out = np.full(x.size, np.nan)
    if x.size >= period:
        weights = np.arange(1.0, period + 1.0)
        windows = np.lib.stride_tricks.sliding_window_view(x, period)
        out[period - 1 :] = windows @ weights / weights.sum()
    return out


def rolling_max(values: ArrayLike, period: int) -> FloatArray:
    """Highest of the last ``period`` values; NaN before ``period - 1``."""
    _check_period(period)
    x = as_float_array(values)
    out = np.full(x.size, np.nan)
    if x.size >= period:
        out[period - 1 :] = np.lib.stride_tricks.sliding_window_view(x, period).max(axis=1)
    return out


def rolling_min(values: ArrayLike, period: int) -> FloatArray:
    """Lowest of the last ``period`` values; NaN before ``period - 1``."""
    _check_period(period)
    x = as_float_array(values)
    out = np.full(x.size, np.nan)
    if x.size >= period:
        out[period - 1 :] = np.lib.stride_tricks.sliding_window_view(x, period).min(axis=1)
    return out


def nan_sma(values: FloatArray, period: int) -> FloatArray:
    """SMA of a series that starts with NaNs: the first value once ``period`` defined ones."""
    out = np.full(values.size, np.nan)
    defined = np.flatnonzero(~np.isnan(values))
    if defined.size:
        start = int(defined[0])
        out[start:] = sma(values[start:], period)
    return out


class RollingSum:
    """Sum (and mean) of the last ``period`` values in O(1), recomputed exactly from the
    window every ``period`` updates so that rounding cannot drift."""

    __slots__ = ("_peak", "_since_exact", "_sum", "_window", "period")

    def __init__(self, period: int) -> None:
        _check_period(period)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self._window: deque[float] = deque(maxlen=self.period)
        self._sum = 0.0
        self._peak = 0.0
        self._since_exact = 0

    @property
    def full(self) -> bool:
        return len(self._window) == self.period

    def update(self, x: float) -> float | None:
        """The mean of the last ``period`` values, None until there are that many."""
        window = self._window
        if len(window) == self.period:
            total = self._sum + x - window[0]
            window.append(x)
            self._since_exact += 1
            self._peak = max(self._peak, abs(total))
            if self._since_exact >= self.period or abs(total) < _CANCELLED * self._peak:
                total = math.fsum(window)
                self._since_exact = 0
                self._peak = abs(total)
            self._sum = total
        else:
            window.append(x)
            self._sum += x
            if len(window) < self.period:
                return None
            self._sum = math.fsum(window)
            self._peak = abs(self._sum)
        return self._sum / self.period


class RollingExtreme:
    """Highest and lowest of the last ``period`` values in amortised O(1) (monotonic deques)."""

    __slots__ = ("_count", "_maxq", "_minq", "period")

    def __init__(self, period: int) -> None:
        _check_period(period)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._maxq: deque[tuple[int, float]] = deque()
        self._minq: deque[tuple[int, float]] = deque()

    def update(self, high: float, low: float) -> tuple[float, float] | None:
        """(highest high, lowest low) of the last ``period`` pairs, None until that many."""
        i = self._count
        self._count = i + 1
        maxq, minq = self._maxq, self._minq
        while maxq and maxq[-1][1] <= high:
            maxq.pop()
        maxq.append((i, high))
        while minq and minq[-1][1] >= low:
            minq.pop()
        minq.append((i, low))
        oldest = i - self.period + 1
        if maxq[0][0] < oldest:
            maxq.popleft()
        if minq[0][0] < oldest:
            minq.popleft()
        if self._count < self.period:
            return None
        return maxq[0][1], minq[0][1]


class WMA:
    """Incremental linearly weighted moving average (weights 1..n).

    ``numerator`` slides as ``num + n * x - total`` and ``total`` as a rolling sum;
    both are recomputed exactly every ``period`` updates.
    """

    __slots__ = ("_num", "_peak", "_since_exact", "_total", "_window", "period", "value")

    def __init__(self, period: int) -> None:
        _check_period(period)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self._window: deque[float] = deque(maxlen=self.period)
        self._num = 0.0
        self._total = 0.0
        self._peak = 0.0
        self._since_exact = 0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def _exact(self) -> None:
        self._num = math.fsum((i + 1) * v for i, v in enumerate(self._window))
        self._total = math.fsum(self._window)
        self._since_exact = 0
        self._peak = abs(self._total)

    def update(self, x: float) -> float | None:
        window, n = self._window, self.period
        if len(window) < n:
            window.append(x)
            if len(window) < n:
                return None
            self._exact()
        else:
            old_total = self._total
            self._total += x - window[0]
            window.append(x)
            self._num += n * x - old_total
            self._since_exact += 1
            self._peak = max(self._peak, abs(self._total))
            if self._since_exact >= n or abs(self._total) < _CANCELLED * self._peak:
                self._exact()
        self.value = self._num / (n * (n + 1) / 2.0)
        return self.value

    def seed(self, values: ArrayLike) -> float | None:
        """Replace the state with the one after ``values`` (keeps only the last window)."""
        self.reset()
        for v in as_float_array(values)[-self.period :].tolist():
            self.update(v)
        return self.value


# --- convergence ----------------------------------------------------------------------

# Fraction of a wrong starting value's error left after the warm-up. 1e-10 keeps a
# restarted evaluator within the promised 1e-9 relative of the uninterrupted one while
# the starting error is up to 10x the indicator's size; seeding from a simple average
# is off by well under 1x on market data (measured in docs/strategies.md, "Warm-up").
CONVERGED = 1e-10


def converged_after(alpha: float, tolerance: float = CONVERGED) -> int:
    """Steps of ``y = (1 - alpha) * y + alpha * x`` after which a starting error is
    damped below ``tolerance`` (0 when ``alpha`` is 1: no memory)."""
    if alpha >= 1.0:
        return 0
    return math.ceil(math.log(tolerance) / math.log1p(-alpha))


def ema_warmup(period: int) -> int:
    """Candles after which an EMA seeded anywhere agrees with one run from the start."""
    return period + converged_after(2.0 / (period + 1))


def wilder_warmup(period: int) -> int:
    """The same for Wilder's smoothing (RSI, ATR, ADX: ``alpha = 1 / period``)."""
    return period + 1 + converged_after(1.0 / period)
