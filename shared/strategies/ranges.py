"""Indicators of the candle's range: true range, ATR and ADX, vectorised and incremental.

Definitions are TA-Lib's (``TRANGE``, ``ATR``, ``ADX``), the oracle of the tests to
1e-9 relative:

- True range of candle ``i >= 1``: ``max(high - low, |high - prev close|, |low - prev close|)``.
- ATR (Wilder): the mean of the first ``period`` true ranges (candles 1..period, so the
  first value is at index ``period``), then ``atr = (atr_prev * (n - 1) + tr) / n``.
- ADX (Wilder, TA-Lib's exact seeding): +DM/-DM and TR summed over candles
  1..period-1, then Wilder sums ``s = s - s / n + x``; ``DI = 100 * DM / TR``,
  ``DX = 100 * |DI+ - DI-| / (DI+ + DI-)``; the first ADX (index ``2 * period - 1``) is
  the mean of the first ``period`` DX (a DX without range counts 0), then
  ``adx = (adx * (n - 1) + dx) / n``, skipped while DX is undefined (no range at all).
  TA-Lib treats any magnitude under 1e-8 as zero there; here only an exact zero is, so
  sub-cent prices are not flattened (tests compare at prices where that cannot matter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from shared.strategies.indicators import ArrayLike, FloatArray, as_float_array, smooth


def _check(period: int, minimum: int = 1) -> None:
    if period < minimum:
        raise ValueError(f"period must be >= {minimum}, got {period}")


def _hlc(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> tuple[FloatArray, ...]:
    h, lo, c = as_float_array(high), as_float_array(low), as_float_array(close)
    if not h.size == lo.size == c.size:
        raise ValueError("high, low and close must have the same length")
    return h, lo, c


def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> FloatArray:
    """True range of every candle; NaN for the first (it has no previous close)."""
    h, lo, c = _hlc(high, low, close)
    out = np.full(h.size, np.nan)
    if h.size > 1:
        prev = c[:-1]
        out[1:] = np.maximum(
            h[1:] - lo[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev))
        )
    return out


def tr_value(high: float, low: float, prev_close: float) -> float:
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's average true range; NaN for the first ``period`` candles."""
    _check(period)
    tr = true_range(high, low, close)
    out = np.full(tr.size, np.nan)
    if tr.size > period:
        first = float(tr[1 : period + 1].mean())
        out[period] = first
        out[period + 1 :] = smooth(tr[period + 1 :], 1.0 / period, first)
    return out


class ATR:
    """Incremental ATR: ``update(high, low, close)`` returns the ATR, or None until
    ``period + 1`` candles."""

    __slots__ = ("_count", "_prev_close", "_sum", "period", "value")

    def __init__(self, period: int = 14) -> None:
        _check(period)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._prev_close = 0.0
        self._sum = 0.0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, high: float, low: float, close: float) -> float | None:
        count = self._count
        self._count = count + 1
        prev, self._prev_close = self._prev_close, close
        if count == 0:
            return None
        tr = max(high - low, abs(high - prev), abs(low - prev))  # tr_value, written out
        value = self.value
        if value is not None:
            self.value = value + (tr - value) / self.period
        else:
            self._sum += tr
            if count == self.period:
                self.value = self._sum / self.period
        return self.value

    def update_many(
        self, high: Sequence[float], low: Sequence[float], close: Sequence[float]
    ) -> list[float | None]:
        """``update`` of each candle in turn, with the same arithmetic (so the same
        bits; the true ranges vectorised): what each returned."""
        out: list[float | None] = []
        i, n = 0, len(close)
        while (self._count == 0 or self.value is None) and i < n:
            out.append(self.update(high[i], low[i], close[i]))
            i += 1
        value = self.value
        if value is None or i == n:
            return out
        h, lo = np.array(high[i:], dtype=np.float64), np.array(low[i:], dtype=np.float64)
        prev = np.array([self._prev_close, *close[i : n - 1]], dtype=np.float64)
        tr = np.maximum(np.maximum(h - lo, np.abs(h - prev)), np.abs(lo - prev))
        period = self.period
        append = out.append
        for x in tr.tolist():
            value = value + (x - value) / period
            append(value)
        self.value = value
        self._count += n - i
        self._prev_close = close[n - 1]
        return out

    def seed(self, high: ArrayLike, low: ArrayLike, close: ArrayLike) -> float | None:
        """Replace the state with the one after the given candles (vectorised)."""
        self.reset()
        h, lo, c = _hlc(high, low, close)
        if h.size <= self.period:
            for values in zip(h.tolist(), lo.tolist(), c.tolist(), strict=True):
                self.update(*values)
            return self.value
        self._count = h.size
        self._prev_close = float(c[-1])
        self.value = float(atr(h, lo, c, self.period)[-1])
        return self.value


class DirectionalValues(NamedTuple):
    adx: float
    plus_di: float
    minus_di: float


class ADX:
    """Incremental ADX (TA-Lib's algorithm): ``update(high, low, close)`` returns
    :class:`DirectionalValues` from candle ``2 * period`` on, else None."""

    __slots__ = (
        "_count",
        "_dm_minus",
        "_dm_plus",
        "_prev",
        "_sum_dx",
        "_tr",
        "period",
        "value",
    )

    def __init__(self, period: int = 14) -> None:
        _check(period, 2)
        self.period = period
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._prev = (0.0, 0.0, 0.0)  # high, low, close
        self._dm_plus = 0.0
        self._dm_minus = 0.0
        self._tr = 0.0
        self._sum_dx = 0.0
        self.value: DirectionalValues | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, high: float, low: float, close: float) -> DirectionalValues | None:
        i = self._count
        self._count = i + 1
        prev_high, prev_low, prev_close = self._prev
        self._prev = (high, low, close)
        if i == 0:
            return None
        n = self.period
        up, down = high - prev_high, prev_low - low
        plus = up if up > 0.0 and up > down else 0.0
        minus = down if down > 0.0 and up < down else 0.0
        tr = tr_value(high, low, prev_close)
        if i < n:  # the first sums: candles 1 .. n-1
            self._dm_plus += plus
            self._dm_minus += minus
            self._tr += tr
            return None
        self._dm_plus += plus - self._dm_plus / n
        self._dm_minus += minus - self._dm_minus / n
        self._tr += tr - self._tr / n
        dx: float | None = None
        plus_di = minus_di = 0.0
        if self._tr != 0.0:
            plus_di = 100.0 * self._dm_plus / self._tr
            minus_di = 100.0 * self._dm_minus / self._tr
            total = plus_di + minus_di
            if total != 0.0:
                dx = 100.0 * abs(plus_di - minus_di) / total
        if i < 2 * n - 1:
            self._sum_dx += dx or 0.0
            return None
        if i == 2 * n - 1:
            adx = (self._sum_dx + (dx or 0.0)) / n
        else:
            assert self.value is not None
            adx = self.value.adx
            if dx is not None:
                adx = (adx * (n - 1) + dx) / n
        self.value = DirectionalValues(adx, plus_di, minus_di)
        return self.value

    def seed(self, high: ArrayLike, low: ArrayLike, close: ArrayLike) -> DirectionalValues | None:
        """Replace the state with the one after the given candles (O(n) updates)."""
        self.reset()
        h, lo, c = _hlc(high, low, close)
        for values in zip(h.tolist(), lo.tolist(), c.tolist(), strict=True):
            self.update(*values)
        return self.value


def adx(high: ArrayLike, low: ArrayLike, close: ArrayLike, period: int = 14) -> FloatArray:
    """ADX of every candle; NaN for the first ``2 * period - 1``."""
    h, lo, c = _hlc(high, low, close)
    state = ADX(period)
    out = np.full(h.size, np.nan)
    for i, values in enumerate(zip(h.tolist(), lo.tolist(), c.tolist(), strict=True)):
        got = state.update(*values)
        if got is not None:
            out[i] = got.adx
    return out
