"""Closed candles as strategies see them: :class:`Bar` (one candle, floats) and
:class:`Bars` (columns of many, float64 arrays, oldest first).

Prices are Decimal on the wire and in the books; indicators are float arithmetic, so
the candle is converted once here, at the strategy boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from shared.messages import Candle
from shared.strategies.indicators import ArrayLike, FloatArray, as_float_array

IntArray = npt.NDArray[np.int64]


class Bar(NamedTuple):
    """One closed candle. A bar made from a close alone has ``open = high = low = close``
    and volume 0 (only strategies that read nothing but the close accept those)."""

    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @classmethod
    def of(cls, candle: Candle) -> Bar:
        return cls(
            candle.open_time,
            candle.close_time,
            float(candle.open),
            float(candle.high),
            float(candle.low),
            float(candle.close),
            float(candle.volume),
        )

    @classmethod
    def from_close(cls, close: float, open_time: int = 0) -> Bar:
        return cls(open_time, open_time, close, close, close, close, 0.0)


@dataclass(frozen=True, slots=True)
class Bars:
    """Columns of closed candles, oldest first, all the same length."""

    open_time: IntArray
    close_time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        n = self.close.size
        columns = (self.open_time, self.close_time, self.open, self.high, self.low, self.volume)
        if any(col.shape != (n,) for col in columns):
            raise ValueError("every column of Bars must have the same length")

    @property
    def size(self) -> int:
        return int(self.close.size)

    def __len__(self) -> int:
        return self.size

    def bar(self, i: int) -> Bar:
        return Bar(
            int(self.open_time[i]),
            int(self.close_time[i]),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
        )

    def __getitem__(self, index: slice) -> Bars:
        return Bars(
            self.open_time[index],
            self.close_time[index],
            self.open[index],
            self.high[index],
            self.low[index],
            self.close[index],
            self.volume[index],
        )

    def finite(self) -> bool:
        return all(
            bool(np.isfinite(col).all())
            for col in (self.open, self.high, self.low, self.close, self.volume)
        )

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> Bars:
        n = len(candles)

        def col(attr: str) -> FloatArray:
            return np.fromiter((float(getattr(c, attr)) for c in candles), np.float64, n)

        return cls(
            np.fromiter((c.open_time for c in candles), np.int64, n),
            np.fromiter((c.close_time for c in candles), np.int64, n),
            col("open"),
            col("high"),
            col("low"),
            col("close"),
            col("volume"),
        )

    @classmethod
    def from_bars(cls, bars: Sequence[Bar]) -> Bars:
        if not bars:
            return cls.from_closes([])
        columns = list(zip(*bars, strict=True))
        return cls(
            np.asarray(columns[0], dtype=np.int64),
            np.asarray(columns[1], dtype=np.int64),
            *(np.asarray(c, dtype=np.float64) for c in columns[2:]),
        )

    @classmethod
    def from_closes(cls, closes: ArrayLike) -> Bars:
        """Bars of closes alone (``open = high = low = close``, volume 0, times 0)."""
        x = as_float_array(closes)
        times = np.zeros(x.size, dtype=np.int64)
        return cls(times, times, x, x, x, x, np.zeros(x.size))
