"""The runner's view of the market: which streams it reads, one shared strategy
computation per (symbol, interval, strategy key), and data freshness.

:class:`Market` is in-memory bookkeeping only; the shell feeds it what it read from
Redis (:mod:`.reader`, :mod:`.lifecycle`). Bots with the same symbol, interval,
strategy and parameters share one :class:`Group` (one incremental evaluator).
:func:`replay` computes a strategy's signals over missed candles (:mod:`.adoption`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.runner.core import interval_length_ms
from shared import keys
from shared.messages import Candle
from shared.strategies.bars import Bars
from shared.strategies.base import OutOfOrderCandle, Signal, StrategyEvaluator

_candle_decoder = msgspec.json.Decoder(Candle)


def decode_candles(raw: list[bytes]) -> list[Candle]:
    """Candle-list elements (oldest first); undecodable ones are skipped."""
    out = []
    for item in raw:
        try:
            candle = _candle_decoder.decode(item)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if candle.closed:
            out.append(candle)
    return out


@dataclass(slots=True)
class Group:
    """One strategy computation shared by every bot with the same evaluation key."""

    key: tuple[str, str, str]
    evaluator: StrategyEvaluator[Any]
    bots: set[str] = field(default_factory=set)
    # Other intervals of the symbol the strategy reads (its declared informative series).
    informative: tuple[str, ...] = ()

    def seed(
        self, candles: list[Candle], informative: dict[str, list[Candle]] | None = None
    ) -> None:
        """Seed on whole candles (the list holds at least the strategy's declared warm-up),
        the declared informative series first."""
        seed(self.evaluator, candles, informative)

    def on_candle(self, candle: Candle) -> Signal | None:
        """The signal on ``candle``; None for a candle older than what it has seen."""
        try:
            return self.evaluator.on_candle(candle)
        except OutOfOrderCandle:
            return None


def seed(
    evaluator: StrategyEvaluator[Any],
    candles: list[Candle],
    informative: dict[str, list[Candle]] | None = None,
) -> None:
    """Seed ``evaluator`` on its series' candles, after its informative series'."""
    for interval, rows in (informative or {}).items():
        evaluator.seed_informative(interval, Bars.from_candles(rows))
    evaluator.seed_candles(candles)


def replay(
    evaluator: StrategyEvaluator[Any],
    candles: list[Candle],
    after: int,
    informative: dict[str, list[Candle]] | None = None,
) -> list[tuple[Candle, Signal]]:
    """The signals on the candles that opened after ``after``, from a fresh
    ``evaluator`` seeded on the candles up to it (a catch-up of missed candles); its
    informative series are handed over whole (a strategy uses only the candles of
    them that closed before the one it decides)."""
    first = next((i for i, c in enumerate(candles) if c.open_time > after), len(candles))
    seed(evaluator, candles[:first], informative)
    out = []
    for candle in candles[first:]:
        try:
            out.append((candle, evaluator.on_candle(candle)))
        except OutOfOrderCandle:
            continue
    return out


@dataclass(slots=True)
class Series:
    """One (symbol, interval) candle stream and the groups evaluated on it."""

    symbol: str
    interval: str
    interval_ms: int
    stream: str
    groups: dict[str, Group] = field(default_factory=dict)  # by strategy key
    # Groups of other series of the symbol that read this one as an informative series.
    informs: list[Group] = field(default_factory=list)
    last_close_time: int | None = None
    last_candle: Candle | None = None
    stale: str | None = None  # the stale gate's last verdict (None: look at every bot)

    @property
    def bot_count(self) -> int:
        return sum(len(g.bots) for g in self.groups.values())


class Market:
    """Streams to read (with the last id read of each) and the series behind them."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.by_stream: dict[str, Series] = {}
        self.tick_symbols: dict[str, str] = {}  # tick stream -> symbol
        self.symbol_bots: dict[str, set[str]] = {}  # symbol -> bot ids (exits on ticks)
        self.last_ids: dict[str, str] = {keys.EXECUTIONS: "$"}
        self.last_price_at: dict[str, int] = {}

    def add_series(self, symbol: str, interval: str) -> Series:
        series = Series(
            symbol, interval, interval_length_ms(interval), keys.candle_stream(symbol, interval)
        )
        self.series[(symbol, interval)] = series
        self.by_stream[series.stream] = series
        return series

    def remove_series(self, series: Series) -> None:
        self.series.pop((series.symbol, series.interval), None)
        self.by_stream.pop(series.stream, None)
        self.last_ids.pop(series.stream, None)

    def add_bot(self, bot_id: str, series: Series, group: Group) -> None:
        group.bots.add(bot_id)
        series.stale = None  # the new bot's gate is checked on the next pass
        self.symbol_bots.setdefault(series.symbol, set()).add(bot_id)

    def inform(self, group: Group, symbol: str, interval: str) -> tuple[Series, bool]:
        """``group`` reads series ``interval`` of ``symbol``; the series (and whether it
        is new here)."""
        series = self.series.get((symbol, interval))
        new = series is None
        if series is None:
            series = self.add_series(symbol, interval)
        if not any(g is group for g in series.informs):
            series.informs.append(group)
        return series, new

    def remove_bot(
        self, bot_id: str, symbol: str, interval: str, strategy_key: str
    ) -> list[Series]:
        """Forget a bot; returns the series no bot of this runner uses any more (its own,
        the informative ones of its group)."""
        bots = self.symbol_bots.get(symbol)
        if bots is not None:
            bots.discard(bot_id)
            if not bots:
                del self.symbol_bots[symbol]
                stream = keys.tick_stream(symbol)
                self.tick_symbols.pop(stream, None)
                self.last_ids.pop(stream, None)
        series = self.series.get((symbol, interval))
        if series is None:
            return []
        gone: list[Series] = []
        group = series.groups.get(strategy_key)
        if group is not None:
            group.bots.discard(bot_id)
            if not group.bots:
                del series.groups[strategy_key]
                for other in group.informative:
                    read = self.series.get((symbol, other))
                    if read is None:
                        continue
                    read.informs = [g for g in read.informs if g is not group]
                    if not read.groups and not read.informs:
                        self.remove_series(read)
                        gone.append(read)
        if not series.groups and not series.informs:
            self.remove_series(series)
            gone.append(series)
        return gone
