"""What every strategy is: typed parameters, a one-shot ``analyze`` and an incremental evaluator.

A strategy is a pure function of the closed candles of one symbol and interval: it
knows nothing of a bot's position, balance or orders. The runner decides what a signal
means for each bot (a BUY opens a position only when the bot is flat, a SELL closes one
only when it holds one). This is what lets every bot with the same symbol, interval,
strategy and parameters share one computation, keyed by
``(symbol, interval, strategy.key)``.

Two ways to evaluate, which give the same signal on the same closes (tests check it):

- ``strategy.analyze(candles)`` / ``analyze_closes(closes)``: vectorised over the whole
  history; for the API, backtests and tests.
- ``strategy.evaluator()``: an object seeded once with ``seed(closes)`` and then fed one
  close at a time with ``on_close(close, open_time)`` in O(1); for the runner.
"""

from __future__ import annotations

import enum
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

import msgspec
import numpy as np
from pydantic import BaseModel, ConfigDict

from shared.messages import Candle
from shared.strategies.indicators import ArrayLike, FloatArray, as_float_array


class SignalAction(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy's verdict on the latest closed candle.

    ``reason`` is for people (the bot's log); ``metadata`` holds the indicator values the
    verdict was based on. ``ready`` is False while the strategy has too few candles.
    """

    action: SignalAction
    reason: str
    metadata: dict[str, float] = msgspec.field(default_factory=dict)
    ready: bool = True


class StrategyParams(BaseModel):
    """Base of every strategy's parameter model: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=StrategyParams)


def canonical_params(params: BaseModel) -> str:
    """Compact JSON with sorted keys: equal parameters give equal strings."""
    return json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class OutOfOrderCandle(ValueError):
    """A candle older than the last one the evaluator took."""


class TradingStrategy(ABC, Generic[P]):
    """A strategy with validated parameters. Subclasses set ``name``, ``title`` and
    ``params_model`` and implement ``min_candles``, ``analyze_closes`` and ``evaluator``."""

    name: ClassVar[str]
    title: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]

    def __init__(self, params: P | Mapping[str, Any] | None = None) -> None:
        model = self.params_model
        validated: StrategyParams
        if isinstance(params, model):
            validated = params
        else:
            validated = model.model_validate(dict(params or {}))
        self.params: P = cast(P, validated)
        self.key = f"{self.name}:{canonical_params(validated)}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"

    @classmethod
    def params_schema(cls) -> dict[str, Any]:
        """JSON schema of the parameters (for the API)."""
        return cls.params_model.model_json_schema()

    @property
    @abstractmethod
    def min_candles(self) -> int:
        """Closed candles needed before the strategy can say anything but HOLD."""

    @abstractmethod
    def analyze_closes(self, closes: ArrayLike) -> Signal:
        """Signal on the last of ``closes`` (oldest first), computed over all of them."""

    @abstractmethod
    def evaluator(self) -> StrategyEvaluator:
        """A fresh incremental evaluator of this strategy and parameters."""

    def analyze(self, candles: Sequence[Candle]) -> Signal:
        """Signal on the last of ``candles`` (closed, oldest first)."""
        closes = np.fromiter(
            (float(c.close) for c in candles), dtype=np.float64, count=len(candles)
        )
        return self.analyze_closes(closes)

    def not_enough(self, have: int) -> Signal:
        return Signal(
            action=SignalAction.HOLD,
            reason=f"{self.name} needs at least {self.min_candles} closed candles, has {have}",
            metadata={"candles": float(have), "min_candles": float(self.min_candles)},
            ready=False,
        )


S = TypeVar("S", bound=TradingStrategy[Any])


class StrategyEvaluator(ABC, Generic[S]):
    """Incremental evaluation of one strategy on one candle series.

    ``seed(closes)`` replaces the state with the one after ``closes`` and returns the
    signal on the last of them; ``on_close(close, open_time)`` takes the next closed
    candle in O(1). With ``open_time`` given, a repeated candle returns the previous
    signal without changing the state (replays after a restart are harmless) and an
    older one raises :class:`OutOfOrderCandle`.
    """

    def __init__(self, strategy: S) -> None:
        self.strategy = strategy
        self.count = 0
        self.last_open_time: int | None = None
        self.last_signal: Signal = strategy.not_enough(0)
        self._min = strategy.min_candles

    @property
    def ready(self) -> bool:
        return self.count >= self._min

    def seed(self, closes: ArrayLike, last_open_time: int | None = None) -> Signal:
        x = as_float_array(closes)
        if not np.isfinite(x).all():
            raise ValueError("closes must be finite")
        self._seed(x[:-1])
        self.count = x.size
        if x.size == 0:
            self.last_signal = self.strategy.not_enough(0)
        else:
            self.last_signal = self._step(float(x[-1]))
        self.last_open_time = last_open_time
        return self.last_signal

    def on_close(self, close: float, open_time: int | None = None) -> Signal:
        if open_time is not None and self.last_open_time is not None:
            if open_time == self.last_open_time:
                return self.last_signal
            if open_time < self.last_open_time:
                raise OutOfOrderCandle(
                    f"candle open_time {open_time} is older than {self.last_open_time}"
                )
        if not math.isfinite(close):
            raise ValueError(f"close must be finite, got {close}")
        self.count += 1
        self.last_signal = self._step(close)
        if open_time is not None:
            self.last_open_time = open_time
        return self.last_signal

    @abstractmethod
    def _seed(self, closes: FloatArray) -> None:
        """Reset the indicators to the state after ``closes`` (may be empty)."""

    @abstractmethod
    def _step(self, close: float) -> Signal:
        """Update the indicators with one close (``self.count`` already counts it)."""
