"""One bot over a stream of closed candles: the runner's rules, on history.

What runs is the shared code the runner runs: the strategy's incremental evaluator
(``config.build_strategy().evaluator()``, fed whole candles), its declared warm-up
(``strategy.warmup_candles``: no decision before that many candles), ``size_entry``,
the exit rules through ``BotBook.check_exit`` (stop-loss, take-profit, trailing, ATR
levels from ``note_atr``), the exchange filters (``shared.fills.prepare_market``), the
fill model (``shared.fills.market_fill``) and ``BotBook.apply`` for every fill. The
decision rules on a closed candle are those of ``services/runner/core.BotState``
(entries only when flat, a strategy SELL closes a position, cooldowns on the candle's
close time); a service never imports another, so they are restated here in a dozen
lines and tests/integration/backtest/test_parity.py drives ``BotState`` itself over the
same candles and compares the round trips.

Time inside a candle (docs/backtest.md, "Fill model"): a decision on candle N's close
fills at candle N+1's open (the next price after the decision) with the slippage.
Exits are checked along the candle's path, open -> nearer extreme -> farther extreme
-> close (open -> low -> high when the candle closes up, open -> high -> low when it
closes down); a level crossed between two path points fills at the level (the first
tick at or beyond it), a gap through it at the path point.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.backtest.columns import Columns, chunked
from shared.binance.rules import SymbolRules
from shared.bots import client_order_id, intent_id
from shared.fills import Costs, OrderRefused, market_fill, prepare_market
from shared.klines import Kline
from shared.messages import ExecutionReport, ExecutionStatus, Side
from shared.strategies.accounting import BotBook, RoundTrip
from shared.strategies.base import SignalAction
from shared.strategies.config import BotConfig, RiskSizing
from shared.strategies.exits import trailing_stop_price
from shared.strategies.sizing import size_entry, stop_distance

BOT_ID = "backtest"
MAX_CURVE_POINTS = 2000
# A position below the minimum notional is refused on every candle its exit fires on
# (live, the gateway refuses each new exit intent too): the first ones are kept, the
# rest counted, so memory stays flat.
MAX_REFUSALS = 100


@dataclass(slots=True)
class Order:
    """A decision waiting for the next price (the next candle's open)."""

    trigger: str
    side: Side
    reason: str
    quote: Decimal | None = None
    qty: Decimal | None = None


@dataclass(slots=True)
class Curve:
    """The equity curve, thinned as it grows (every ``stride``-th candle), so memory
    stays flat however many candles stream through."""

    stride: int = 1
    points: list[tuple[int, float]] = field(default_factory=list)
    seen: int = 0

    def add(self, t: int, equity: float) -> None:
        if self.seen % self.stride == 0:
            self.keep(t, equity)
        self.seen += 1

    def keep(self, t: int, equity: float) -> int:
        """Keep the point (the ``seen``-th, a multiple of ``stride``); the stride after."""
        self.points.append((t, equity))
        if len(self.points) >= MAX_CURVE_POINTS:
            self.points = self.points[::2]
            self.stride *= 2
        return self.stride


@dataclass(slots=True)
class Returns:
    """Running sums of per-candle equity returns (Sharpe, Sortino) and drawdown."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    downside: float = 0.0
    peak: float = 0.0
    max_dd: float = 0.0
    max_dd_pct: float = 0.0

    def add(self, r: float) -> None:
        self.n += 1
        self.total += r
        self.squares += r * r
        if r < 0:
            self.downside += r * r

    def equity(self, value: float) -> None:
        if value > self.peak:
            self.peak = value
        dd = self.peak - value
        if dd > self.max_dd:
            self.max_dd = dd
        if self.peak > 0 and dd / self.peak > self.max_dd_pct:
            self.max_dd_pct = dd / self.peak


@dataclass(slots=True)
class Refusal:
    open_time: int
    side: str
    reason: str


class Backtest:
    """Feed closed candles with :meth:`step`; :meth:`result` says what happened."""

    def __init__(
        self, config: BotConfig, rules: SymbolRules, costs: Costs, *, start_at: int = 0
    ) -> None:
        self.config = config
        # No decision on a candle opening before ``start_at`` (the walk-forward test
        # period: the strategy has seen the candles before it, as a seeded live bot).
        self.start_at = start_at
        self.rules = rules
        self.costs = costs
        self.strategy = config.build_strategy()
        self.evaluator = self.strategy.evaluator()
        self.warmup = self.strategy.warmup_candles
        self.step_size = rules.market_step_size or rules.step_size
        self.book = BotBook(
            allocation=config.quote_allocation,
            base_asset=rules.base_asset,
            quote_asset=rules.quote_asset,
            symbol=config.symbol,
            dust_qty=self.step_size,
            exit_plan=config.exit_plan(),
        )
        self.trailing = config.exit_plan().trailing_stop_pct
        self.interval_ms = 0
        self.pending: Order | None = None
        self.last_exit_at = 0
        self.trips: list[RoundTrip] = []
        self.refusals: list[Refusal] = []
        self.refused = 0
        self.candles = 0
        self.decided = 0
        self.in_position = 0
        self.first: Kline | None = None
        self.first_decided: Kline | None = None
        self.last: Kline | None = None
        self.curve = Curve()
        self.returns = Returns()
        self._prev_equity = float(config.quote_allocation)
        self.returns.peak = self._prev_equity

    # --- the loop -------------------------------------------------------------------

    def run(self, klines: Iterable[Kline | Columns], *, end_before: int | None = None) -> Backtest:
        """Take every candle of ``klines`` (those opening before ``end_before``): klines
        one by one (``read_klines``) or column chunks (``read_columns``, faster)."""
        return self.feed(chunked(klines), end_before=end_before)

    def feed(self, chunks: Iterable[Columns], *, end_before: int | None = None) -> Backtest:
        """Take every candle of ``chunks`` (those opening before ``end_before``): what
        :func:`~services.backtest.columns.read_columns` reads from a file."""
        for chunk in chunks:
            n = chunk.size
            if end_before is not None and n and chunk.open_time[-1] >= end_before:
                self._chunk(chunk, bisect.bisect_left(chunk.open_time, end_before))
                break
            self._chunk(chunk, n)
        return self

    def _levels(self) -> tuple[bool, float, float, float | None, float, float]:
        """The book's figures the loop reads on every candle, as floats (read again
        after a fill or an exit check changed them): holding, stop, take-profit (less
        a margin), trailing high, cash, quantity."""
        book = self.book
        tp = book.take_profit_price
        th = book.trailing_high
        return (
            book.qty > 0,
            float(book.stop_price) if book.stop_price is not None else 0.0,
            float(tp) * (1.0 - 1e-9) if tp is not None else math.inf,
            float(th) if th is not None else None,
            float(book.cash),
            float(book.qty),
        )

    def _chunk(self, ch: Columns, n: int) -> None:
        """Candles ``0 .. n-1`` of ``ch``, in order: per candle, the pending order fills
        at the open, the exits are checked along the candle, the strategy takes it,
        and a decision on its close is made (see the module docstring). What the book
        holds is read as floats into locals, again after each fill or exit check."""
        if n <= 0:
            return
        if self.first is None:
            self.first = ch.kline(0)
            self.interval_ms = ch.step_ms
        book = self.book
        # The strategy is a pure function of the candles: the chunk's signals first
        # (those that are not HOLD, by index), then the bot candle by candle.
        signals = self.evaluator.on_bars(ch.bars(n))
        times, highs, lows, closes = ch.open_time, ch.high, ch.low, ch.close
        span = ch.step_ms - 1
        warmup, start_at = self.warmup, self.start_at
        trail_mult = None if self.trailing is None else 1.0 - float(self.trailing) / 100.0
        buy = SignalAction.BUY
        candles, decided, in_position = self.candles, self.decided, self.in_position
        rets, curve = self.returns, self.curve
        rn, total, squares, downside = rets.n, rets.total, rets.squares, rets.downside
        peak, max_dd, max_dd_pct = rets.peak, rets.max_dd, rets.max_dd_pct
        prev, seen, stride = self._prev_equity, curve.seen, curve.stride
        mark = -1  # a HOLD in position marks the book at the close: only the last counts
        holding, stop_f, tp_f, th_f, cash_f, qty_f = self._levels()
        top_row = -1  # the candle whose high is the trailing high, not yet in the book
        undecided = self.first_decided is None
        events = sorted(signals)  # candles with a signal, in order
        event = 0  # the next of them
        i = -1
        while i + 1 < n:
            i += 1
            t = times[i]
            if (
                not holding
                and qty_f == 0.0
                and self.pending is None
                and candles + 1 >= warmup
                and t >= start_at
            ):
                while event < len(events) and events[event] < i:
                    event += 1
                end = events[event] if event < len(events) else n
                if end - i > 1:
                    # Flat and nothing to decide until ``end``: the equity stays at the
                    # cash, so these candles add what the loop below would (a return
                    # of 0 after the first, curve points at the same stride).
                    if undecided:
                        self.first_decided = ch.kline(i)
                        undecided = False
                    count = end - i
                    candles += count
                    decided += count
                    equity = cash_f
                    r = equity / prev - 1.0 if prev > 0 else 0.0
                    rn += count
                    total += r
                    squares += r * r
                    if r < 0:
                        downside += r * r
                    if equity > peak:
                        peak = equity
                    dd = peak - equity
                    if dd > max_dd:
                        max_dd = dd
                    if peak > 0 and dd / peak > max_dd_pct:
                        max_dd_pct = dd / peak
                    prev = equity
                    first, last = seen, seen + count
                    while seen < last:
                        if seen % stride == 0:
                            stride = curve.keep(times[i + seen - first] + span, equity)
                            seen += 1
                        else:
                            seen = min(seen + stride - seen % stride, last)
                    i = end - 1
                    continue
            candles += 1
            if self.pending is not None:
                if top_row >= 0:
                    book.trailing_high, top_row = Decimal(ch.text(top_row)[1]), -1
                order, self.pending = self.pending, None
                self._fill(order, Decimal(ch.text(i)[0]), t)
                mark = -1
                holding, stop_f, tp_f, th_f, cash_f, qty_f = self._levels()
            if holding:
                high = highs[i]
                floor = stop_f
                if trail_mult is not None:
                    top = th_f if th_f is not None and th_f > high else high
                    if top * trail_mult > floor:
                        floor = top * trail_mult
                if lows[i] <= floor * (1.0 + 1e-9) or high >= tp_f:
                    if top_row >= 0:
                        book.trailing_high, top_row = Decimal(ch.text(top_row)[1]), -1
                    self._path_exits(ch.kline(i))
                    mark = -1
                    holding, stop_f, tp_f, th_f, cash_f, qty_f = self._levels()
                elif th_f is None or high > th_f:
                    # only the trailing high moves (``_quiet``); made Decimal when read
                    th_f, top_row = high, i
                elif high == th_f:  # the floats are equal: are the decimals?
                    if top_row >= 0:
                        book.trailing_high, top_row = Decimal(ch.text(top_row)[1]), -1
                    top_d = Decimal(ch.text(i)[1])
                    if book.trailing_high is None or top_d > book.trailing_high:
                        book.trailing_high = top_d
                in_position += 1
            if candles < warmup or t < start_at:
                continue
            if undecided:
                self.first_decided = ch.kline(i)
                undecided = False
            decided += 1
            signal = signals.get(i)
            if signal is not None:
                action = signal.action
                if action is buy:
                    # ATR levels of an entry are measured in the ATR of the candle it was
                    # decided on (the last noted before its fill): noted only then, as the
                    # notes of the other candles are never read.
                    book.note_atr(signal.metadata.get("atr"))
                mark = -1
                self._decide(ch.text(i)[3], t, t + span, action, signal.reason)
            elif holding:
                mark = i
            equity = cash_f + qty_f * closes[i]
            r = equity / prev - 1.0 if prev > 0 else 0.0
            rn += 1
            total += r
            squares += r * r
            if r < 0:
                downside += r * r
            if equity > peak:
                peak = equity
            dd = peak - equity
            if dd > max_dd:
                max_dd = dd
            if peak > 0 and dd / peak > max_dd_pct:
                max_dd_pct = dd / peak
            prev = equity
            if seen % stride == 0:
                stride = curve.keep(t + span, equity)
            seen += 1
        if top_row >= 0:
            book.trailing_high = Decimal(ch.text(top_row)[1])
        if mark >= 0:
            book.mark(Decimal(ch.text(mark)[3]))
        self.candles, self.decided, self.in_position = candles, decided, in_position
        rets.n, rets.total, rets.squares, rets.downside = rn, total, squares, downside
        rets.peak, rets.max_dd, rets.max_dd_pct = peak, max_dd, max_dd_pct
        self._prev_equity, curve.seen = prev, seen
        self.last = ch.kline(n - 1)

    # --- decisions (services/runner/core.BotState._decide) ---------------------------

    def _decide(
        self, close: str, open_time: int, close_time: int, action: SignalAction, reason: str
    ) -> None:
        book = self.book
        price = Decimal(close)
        book.mark(price)
        if action is SignalAction.HOLD or self.pending is not None:
            return
        trigger = str(open_time)
        if action is SignalAction.SELL:
            if book.qty > 0:
                self.pending = Order(trigger, Side.SELL, reason, qty=book.qty)
            return
        if book.qty > 0 or self._cooling(close_time):
            return
        cfg = self.config
        distance = None
        if isinstance(cfg.sizing, RiskSizing) and cfg.stop_loss_pct is not None:
            distance = stop_distance(price, cfg.stop_loss_pct)
        size = size_entry(
            cfg.sizing, equity=book.equity, price=price, stop_distance=distance, available=book.cash
        )
        if size.quote > 0:
            self.pending = Order(trigger, Side.BUY, reason, quote=size.quote)

    def _cooling(self, close_time: int) -> bool:
        """``BotState.in_cooldown``: measured from the exit's time to the candle's close."""
        if not self.last_exit_at:
            return False
        cfg = self.config
        since = close_time - self.last_exit_at
        if cfg.cooldown_seconds and since < cfg.cooldown_seconds * 1000:
            return True
        return bool(cfg.cooldown_candles and since // self.interval_ms < cfg.cooldown_candles)

    # --- exits along the candle ------------------------------------------------------

    def _path_exits(self, k: Kline) -> None:
        o, h, lo, c = k.text
        up = k.close >= k.open
        path = (o, lo, h, c) if up else (o, h, lo, c)
        book = self.book
        prev: Decimal | None = None
        for i, text in enumerate(path):
            price = Decimal(text)
            if i and price == prev:
                continue
            levels_before = (book.stop_price, book.take_profit_price, book.trailing_high)
            check = book.check_exit(price)
            if check.reason is not None:
                level = check.level
                fill_at = price
                if prev is not None and level is not None:
                    # crossed between two path points: the first tick at or beyond it
                    if price < level <= prev or prev <= level < price:
                        fill_at = level
                    elif check.reason.value == "TRAILING_STOP" and price <= level:
                        fill_at = self._trail_fill(levels_before[2], prev, price, level)
                why = f"{check.reason.value} at {fill_at} (level {level})"
                trigger = f"t{k.open_time}p{i}"
                self._fill(Order(trigger, Side.SELL, why, qty=book.qty), fill_at, k.open_time)
                return
            prev = price

    def _trail_fill(
        self, high_before: Decimal | None, prev: Decimal, price: Decimal, level: Decimal
    ) -> Decimal:
        """A trailing stop whose level rose within the segment (the high was made on it)
        is met at the level when the price came down through it."""
        if self.trailing is None or high_before is None:
            return price
        old = trailing_stop_price(high_before, self.trailing)
        return level if prev > old and price <= level else price

    # --- fills ----------------------------------------------------------------------

    def _fill(self, order: Order, last_price: Decimal, ts: int) -> None:
        rules, book = self.rules, self.book
        try:
            qty, quote = prepare_market(
                rules, order.side, last_price, quantity=order.qty, quote_quantity=order.quote
            )
        except OrderRefused as exc:
            self._refuse(Refusal(ts, order.side.value, str(exc)))
            return
        fill = market_fill(
            order.side,
            last_price,
            self.costs,
            self.step_size,
            rules.base_asset,
            rules.quote_asset,
            quantity=qty,
            quote_quantity=quote,
        )
        if fill is None:
            self._refuse(Refusal(ts, order.side.value, "quantity rounds to 0"))
            return
        action = "buy" if order.side is Side.BUY else "sell"
        iid = intent_id(BOT_ID, order.trigger, action)
        report = ExecutionReport(
            intent_id=iid,
            client_order_id=client_order_id(iid),
            bot_id=BOT_ID,
            symbol=self.config.symbol,
            side=order.side,
            status=ExecutionStatus.FILLED,
            final=True,
            executed_qty=fill.qty,
            cumulative_quote=fill.quote,
            avg_price=fill.price,
            commission=fill.commission,
            commission_asset=fill.commission_asset,
            reason=order.reason,
            mode="backtest",
            is_exit=order.side is Side.SELL,
            ts=ts,
        )
        result = book.apply(report)
        if result.round_trips:
            self.trips.extend(result.round_trips)
            self.last_exit_at = ts

    def _refuse(self, refusal: Refusal) -> None:
        self.refused += 1
        if len(self.refusals) < MAX_REFUSALS:
            self.refusals.append(refusal)

    # --- results --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        from services.backtest.metrics import summarize

        return summarize(self)


def periods_per_year(interval_ms: int) -> float:
    return 365.0 * 86_400_000 / interval_ms if interval_ms > 0 else math.nan
