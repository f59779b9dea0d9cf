"""What every strategy is: typed parameters, a one-shot ``analyze`` and an incremental evaluator.

A strategy is a pure function of the closed candles of one symbol and interval: it
knows nothing of a bot's position, balance or orders. The runner decides what a signal
means for each bot (a BUY opens a position only when the bot is flat, a SELL closes one
only when it holds one). This is what lets every bot with the same symbol, interval,
strategy and parameters share one computation, keyed by
``(symbol, interval, strategy.key)``.

Strategies see each closed candle whole (:class:`~shared.strategies.bars.Bar`: open,
high, low, close, volume, open and close time). Two ways to evaluate, which give the
same signal on the same candles (tests check it):

- ``strategy.analyze(candles)`` / ``analyze_bars(bars)`` (``analyze_closes(closes)`` for
  strategies that read only the close): vectorised over the whole history; for the
  API, backtests and tests.
- ``strategy.evaluator()``: an object seeded once with ``seed_candles(candles)`` (or
  ``seed_bars``) and then fed one closed candle at a time with ``on_candle(candle)`` in
  O(1); for the runner. ``seed(closes)`` / ``on_close(close)`` remain for strategies
  that read only the close.

``strategy.warmup_candles`` is the strategy's own declaration of how many closed candles
an evaluator must be seeded with so that its indicator values agree to 1e-9 relative
with an evaluator that has run from the first candle (docs/strategies.md, "Warm-up").

Every evaluator fed whole candles also keeps the ATR of ``strategy.atr_period`` and adds
it to each signal's metadata as ``"atr"``: what ATR stop-losses and take-profits of any
strategy are measured in (:mod:`shared.strategies.exits`).
"""

from __future__ import annotations

import enum
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

import msgspec
from pydantic import BaseModel, ConfigDict

from shared.messages import Candle
from shared.strategies.bars import Bar, Bars
from shared.strategies.indicators import ArrayLike, as_float_array, wilder_warmup
from shared.strategies.ranges import ATR, atr

DEFAULT_ATR_PERIOD = 14


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
    ``params_model`` and implement ``min_candles``, ``evaluator`` and one of
    ``analyze_bars`` (any strategy) or ``analyze_closes`` (strategies that read only the
    close; set ``uses_ohlcv = False``). ``signal_warmup`` defaults to ``min_candles``:
    a strategy whose indicators remember their start (EMA, Wilder smoothing) overrides
    it with the candles they need to converge (``indicators.ema_warmup`` and
    ``wilder_warmup``)."""

    name: ClassVar[str]
    title: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]
    # False: the strategy reads only closes, so ``seed(closes)`` / ``on_close`` may feed it.
    uses_ohlcv: ClassVar[bool] = True

    def __init__(self, params: P | Mapping[str, Any] | None = None) -> None:
        model = self.params_model
        validated: StrategyParams
        if isinstance(params, model):
            validated = params
        else:
            validated = model.model_validate(dict(params or {}))
        self.params: P = cast(P, validated)
        self.key = f"{self.name}:{canonical_params(validated)}"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = TradingStrategy.__dict__
        if (
            not getattr(cls, "__abstractmethods__", None)
            and cls.analyze_bars is own["analyze_bars"]
            and cls.analyze_closes is own["analyze_closes"]
        ):
            raise TypeError(f"{cls.__name__} must implement analyze_bars or analyze_closes")

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

    @property
    def atr_period(self) -> int:
        """Period of the ATR reported with every signal (for ATR stops)."""
        return DEFAULT_ATR_PERIOD

    @property
    def signal_warmup(self) -> int:
        """Closed candles after which the strategy's own indicators have converged."""
        return self.min_candles

    @property
    def warmup_candles(self) -> int:
        """Closed candles to seed an evaluator with so that it decides as one that has
        run from the first candle (indicator values, the ATR included, within 1e-9
        relative)."""
        return max(self.signal_warmup, wilder_warmup(self.atr_period))

    @property
    def informative(self) -> dict[str, int]:
        """Other series of the bot's symbol the strategy reads, by interval, each with the
        closed candles of warm-up it needs there (e.g. ``{"1h": 577}``: a 1h trend filter
        of a 5m bot). The runner subscribes the bot to each, seeds the evaluator with
        them (``seed_informative``, before ``seed_bars``) and hands it each of their
        closed candles (``on_informative``); decisions are still taken on the bot's own
        interval's closes. Default: none."""
        return {}

    @abstractmethod
    def evaluator(self) -> StrategyEvaluator[Any]:
        """A fresh incremental evaluator of this strategy and parameters."""

    def analyze_bars(self, bars: Bars) -> Signal:
        """Signal on the last of ``bars`` (oldest first), computed over all of them."""
        return self.analyze_closes(bars.close)

    def analyze_closes(self, closes: ArrayLike) -> Signal:
        """Signal on the last of ``closes`` (only for strategies that read only the close)."""
        if self.uses_ohlcv:
            raise TypeError(f"strategy {self.name} reads whole candles, not closes alone")
        return self.analyze_bars(Bars.from_closes(closes))

    def analyze(self, candles: Sequence[Candle]) -> Signal:
        """Signal on the last of ``candles`` (closed, oldest first), with the ATR."""
        return self.analyze_with_atr(Bars.from_candles(candles))

    def analyze_with_atr(self, bars: Bars) -> Signal:
        """``analyze_bars`` plus ``metadata["atr"]``, as an evaluator fed whole candles."""
        signal = self.analyze_bars(bars)
        value = (
            float(atr(bars.high, bars.low, bars.close, self.atr_period)[-1])
            if bars.size
            else math.nan
        )
        if math.isnan(value):
            return signal
        return msgspec.structs.replace(signal, metadata={**signal.metadata, "atr": value})

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

    ``seed_bars(bars)`` / ``seed_candles(candles)`` replace the state with the one after
    those candles and return the signal on the last of them; ``on_candle(candle)`` (a
    :class:`Candle` or :class:`Bar`) takes the next closed candle in O(1). A repeated
    candle (same ``open_time``) returns the previous signal without changing the state
    (replays after a restart are harmless) and an older one raises
    :class:`OutOfOrderCandle`. ``seed(closes)`` / ``on_close(close, open_time)`` feed
    strategies that read only the close.
    """

    def __init__(self, strategy: S) -> None:
        self.strategy = strategy
        self.count = 0
        self.last_open_time: int | None = None
        self.last_signal: Signal = strategy.not_enough(0)
        self._min = strategy.min_candles
        self._atr = ATR(strategy.atr_period)

    @property
    def ready(self) -> bool:
        return self.count >= self._min

    def seed_bars(
        self, bars: Bars, last_open_time: int | None = None, *, whole: bool = True
    ) -> Signal:
        """Seed on ``bars``; the last one's ``open_time`` is remembered unless
        ``last_open_time`` says otherwise. ``whole=False``: bars made from closes alone
        (no ATR is kept)."""
        if not bars.finite():
            raise ValueError("candle prices and volumes must be finite")
        head = bars[:-1]
        self._seed(head)
        self._atr.reset()
        if whole:
            self._atr.seed(head.high, head.low, head.close)
        self.count = bars.size
        if bars.size == 0:
            self.last_signal = self.strategy.not_enough(0)
            self.last_open_time = last_open_time
            return self.last_signal
        last = bars.bar(bars.size - 1)
        signal = self._step(last)
        self.last_signal = self._with_atr(signal, last) if whole else signal
        self.last_open_time = last.open_time if last_open_time is None else last_open_time
        return self.last_signal

    def seed_candles(self, candles: Sequence[Candle]) -> Signal:
        return self.seed_bars(Bars.from_candles(candles))

    def seed(self, closes: ArrayLike, last_open_time: int | None = None) -> Signal:
        """Seed on closes alone (strategies that read only the close)."""
        self._closes_only()
        x = as_float_array(closes)
        signal = self.seed_bars(Bars.from_closes(x), whole=False)
        self.last_open_time = last_open_time
        return signal

    def on_candle(self, candle: Candle | Bar) -> Signal:
        # The runner's and the backtester's per-candle path: ``_take`` and ``_with_atr``
        # written out, as this runs for every candle of every backtest.
        bar = Bar.of(candle) if isinstance(candle, Candle) else candle
        open_time, _, o, h, lo, c, v = bar
        # ``x - x`` is 0.0 for a finite x and NaN for an infinite or NaN one
        if (o - o) + (h - h) + (lo - lo) + (c - c) + (v - v) != 0.0:
            raise ValueError(f"candle prices and volume must be finite, got {bar}")
        last = self.last_open_time
        if last is not None and open_time <= last:
            if open_time == last:
                return self.last_signal
            raise OutOfOrderCandle(f"candle open_time {open_time} is older than {last}")
        self.count += 1
        signal = self._step(bar)
        atr = self._atr.update(h, lo, c)
        if atr is not None:
            signal = msgspec.structs.replace(signal, metadata={**signal.metadata, "atr": atr})
        self.last_signal = signal
        self.last_open_time = open_time
        return signal

    def on_bars(self, bars: Bars) -> dict[int, Signal]:
        """Take ``bars`` (the next closed candles, oldest first) as ``on_candle`` takes
        each one, and return the signals that are not HOLD, by index in ``bars`` (the
        backtester's way in: it needs no HOLD). The evaluator ends in the state
        ``on_candle`` leaves, ``last_signal`` included. A strategy may make it faster
        by overriding ``_steps``; tests/unit/strategies/test_on_bars.py holds every
        strategy to the signals of ``on_candle``."""
        n = bars.size
        times = bars.open_time
        last = self.last_open_time
        if n == 0:
            return {}
        if (last is not None and int(times[0]) <= last) or (
            n > 1 and bool((times[1:] <= times[:-1]).any())
        ):
            out = {}
            for i in range(n):  # repeated or older candles: the one-at-a-time rules
                signal = self.on_candle(bars.bar(i))
                if signal.action is not SignalAction.HOLD:
                    out[i] = signal
            return out
        if not bars.finite():
            raise ValueError("candle prices and volumes must be finite")
        signals, signal = self._steps(bars)
        atrs = self._atr.update_many(bars.high.tolist(), bars.low.tolist(), bars.close.tolist())
        replace = msgspec.structs.replace
        for i, s in signals.items():
            value = atrs[i]
            if value is not None:
                signals[i] = replace(s, metadata={**s.metadata, "atr": value})
        value = atrs[-1]
        self.last_signal = (
            signal if value is None else replace(signal, metadata={**signal.metadata, "atr": value})
        )
        self.last_open_time = int(times[-1])
        return signals

    def _steps(self, bars: Bars) -> tuple[dict[int, Signal], Signal]:
        """``_step`` over every one of ``bars`` (``count`` counting each before its
        step): the signals that are not HOLD by index, and the last bar's signal."""
        signals: dict[int, Signal] = {}
        hold = SignalAction.HOLD
        step = self._step
        signal = self.last_signal
        rows = zip(
            bars.open_time.tolist(), bars.close_time.tolist(), bars.open.tolist(),
            bars.high.tolist(), bars.low.tolist(), bars.close.tolist(), bars.volume.tolist(),
            strict=True,
        )  # fmt: skip
        for i, row in enumerate(rows):
            self.count += 1
            signal = step(Bar(*row))
            if signal.action is not hold:
                signals[i] = signal
        return signals, signal

    def on_close(self, close: float, open_time: int | None = None) -> Signal:
        """The next close alone (strategies that read only the close)."""
        if self.strategy.uses_ohlcv:
            self._closes_only()
        if not math.isfinite(close):
            raise ValueError(f"close must be finite, got {close}")
        t = open_time or 0
        return self._take(Bar(t, t, close, close, close, close, 0.0), open_time)

    def _closes_only(self) -> None:
        if self.strategy.uses_ohlcv:
            raise TypeError(
                f"strategy {self.strategy.name} reads whole candles: use seed_bars/on_candle"
            )

    def _with_atr(self, signal: Signal, bar: Bar) -> Signal:
        atr = self._atr.update(bar.high, bar.low, bar.close)
        if atr is None:
            return signal
        return msgspec.structs.replace(signal, metadata={**signal.metadata, "atr": atr})

    def _take(self, bar: Bar, open_time: int | None, whole: bool = False) -> Signal:
        if open_time is not None and self.last_open_time is not None:
            if open_time == self.last_open_time:
                return self.last_signal
            if open_time < self.last_open_time:
                raise OutOfOrderCandle(
                    f"candle open_time {open_time} is older than {self.last_open_time}"
                )
        self.count += 1
        signal = self._step(bar)
        self.last_signal = self._with_atr(signal, bar) if whole else signal
        if open_time is not None:
            self.last_open_time = open_time
        return self.last_signal

    def seed_informative(self, interval: str, bars: Bars) -> None:
        """Replace what the evaluator keeps of the declared series ``interval`` with
        ``bars`` (closed, oldest first); call before ``seed_bars``."""
        raise TypeError(f"strategy {self.strategy.name} reads no {interval} series")

    def on_informative(self, interval: str, candle: Candle | Bar) -> None:
        """The next closed candle of the declared series ``interval``; no signal (the
        decision comes with the next candle of the bot's own interval)."""
        raise TypeError(f"strategy {self.strategy.name} reads no {interval} series")

    @abstractmethod
    def _seed(self, bars: Bars) -> None:
        """Reset the indicators to the state after ``bars`` (may be empty)."""

    @abstractmethod
    def _step(self, bar: Bar) -> Signal:
        """Update the indicators with one candle (``self.count`` already counts it)."""
