"""A bot's position and statistics, pure: execution reports in, state and round trips out.

:class:`BotBook` applies the final :class:`~shared.messages.ExecutionReport` of each
intent (DESIGN: one terminal report per intent, carrying all of the order's fills):

- BUY adds to the position. The cost basis is ``price * received qty``; a commission in
  the base asset reduces the received quantity and counts as a fee worth
  ``commission * price``. Entry fees are kept with the open position.
- SELL reduces the position and realises
  ``proceeds - cost basis of the sold part - its share of entry fees - exit fees``.
  Over a closed position, realized PnL is exactly proceeds minus costs minus fees.
- A SELL larger than the position is clamped to it (proceeds and fees scaled to the
  part the bot owned) and flagged; the position never goes negative.
- A commission in a third asset (BNB) is converted with ``asset_prices`` when given,
  else kept in ``unpriced_fees`` and left out of PnL.
- The mark price moves to the price of each fill applied.
- When the position returns to zero (or to at most ``dust_qty``, which is then written
  off at cost), a :class:`RoundTrip` is returned and counted as a win (PnL > 0) or a loss.

Idempotency: the book remembers the last ``MAX_APPLIED`` intent ids it applied and
ignores a report for one of them. Persist the position and stats hashes together (one
MULTI) so that the remembered ids and the state they produced cannot part.

Equity is ``allocation + realized + unrealized``; unrealized PnL at the mark price
includes the entry fees already paid. Peak equity and maximum drawdown follow every
report and every :meth:`BotBook.mark`.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

import msgspec

from shared.messages import ExecutionReport, ExecutionStatus, Side
from shared.strategies.exits import ExitCheck, ExitPlan, ExitPosition, check_exit, exit_levels

ZERO = Decimal(0)
_HUNDRED = Decimal(100)
# Every quotient (a share of the cost basis, a fee converted to quote) is rounded to
# 18 decimals and the book computes with 40 significant digits, so that sums of
# exchange amounts (8 decimals) and these shares stay exact below 1e22.
_QUANTUM = Decimal("1e-18")
_PRECISION = 40
MAX_APPLIED = 256


class RoundTrip(msgspec.Struct, frozen=True, kw_only=True):
    """One closed position, from the first BUY to the SELL that flattened it."""

    symbol: str
    opened_at: int
    closed_at: int
    qty: Decimal  # base received over the trip (net of base-asset commission)
    entry_price: Decimal  # cost / qty
    exit_price: Decimal  # proceeds / sold qty
    cost: Decimal  # quote paid for the received qty
    proceeds: Decimal
    fees: Decimal  # in quote
    pnl: Decimal  # proceeds - cost - fees
    pnl_pct: Decimal  # pnl / cost * 100
    exit_reason: str = ""
    dust: Decimal = ZERO  # base written off at cost when the trip closed


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: bool
    note: str = ""  # why a report was not applied, or what was odd about it
    realized_pnl: Decimal = ZERO  # change of realized PnL
    qty_change: Decimal = ZERO
    clamped: bool = False  # a SELL exceeded the position and was clamped
    round_trips: tuple[RoundTrip, ...] = ()


@dataclass(slots=True)
class _Fill:
    qty: Decimal
    quote: Decimal
    commission: Decimal
    asset: str


def _fmt(value: Decimal) -> str:
    return format(value, "f")


def _opt(value: Decimal | None) -> str:
    return "" if value is None else _fmt(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class BotBook:
    allocation: Decimal
    base_asset: str
    quote_asset: str
    symbol: str = ""
    dust_qty: Decimal = ZERO
    exit_plan: ExitPlan | None = None
    # position
    qty: Decimal = ZERO
    cost_basis: Decimal = ZERO
    entry_fees: Decimal = ZERO
    opened_at: int = 0
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    trailing_high: Decimal | None = None
    atr: Decimal | None = None  # the strategy's latest ATR (ATR stops), see note_atr
    # the open round trip
    rt_bought: Decimal = ZERO
    rt_cost: Decimal = ZERO
    rt_sold: Decimal = ZERO
    rt_proceeds: Decimal = ZERO
    rt_fees: Decimal = ZERO
    rt_pnl: Decimal = ZERO
    # statistics
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    trades: int = 0
    wins: int = 0
    losses: int = 0
    mark_price: Decimal | None = None
    peak_equity: Decimal | None = None
    max_drawdown: Decimal = ZERO
    max_drawdown_pct: Decimal = ZERO
    clamped_sells: int = 0
    fills: int = 0  # fills applied (a report carries one or more)
    rejections: int = 0  # final reports REJECTED (by the gateway's rails or the venue)
    unpriced_fees: dict[str, Decimal] = field(default_factory=dict)
    _applied: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_APPLIED))
    _applied_set: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.allocation <= 0:
            raise ValueError(f"allocation must be positive, got {self.allocation}")
        if self.peak_equity is None:
            self.peak_equity = self.equity

    # --- derived figures ------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.qty > 0

    @property
    def entry_price(self) -> Decimal:
        """Average entry price of the open position (0 when flat)."""
        return self.cost_basis / self.qty if self.qty > 0 else ZERO

    @property
    def unrealized_pnl(self) -> Decimal:
        if self.qty <= 0:
            return ZERO
        mark = self.mark_price if self.mark_price is not None else self.entry_price
        return self.qty * mark - self.cost_basis - self.entry_fees

    @property
    def total_pnl(self) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl

    @property
    def equity(self) -> Decimal:
        return self.allocation + self.total_pnl

    @property
    def cash(self) -> Decimal:
        """Quote the bot has left to spend: equity minus the open position's value."""
        return self.allocation + self.realized_pnl - self.cost_basis - self.entry_fees

    @property
    def win_rate(self) -> Decimal:
        return Decimal(self.wins) / Decimal(self.trades) if self.trades else ZERO

    def applied(self, intent_id: str) -> bool:
        return intent_id in self._applied_set

    # --- updates -------------------------------------------------------------------

    def mark(self, price: Decimal) -> None:
        """Take a new market price: unrealized PnL, equity, peak and drawdown follow."""
        self.mark_price = price
        if self.qty > 0:  # flat, equity does not move with the price (reports track it)
            self._track_drawdown()

    def note_atr(self, value: float | None) -> None:
        """The ATR of the bot's strategy on the last closed candle (``Signal.metadata``
        ``"atr"``): ATR stop-loss/take-profit of the next entry are measured in it."""
        if value is not None and math.isfinite(value) and value > 0:
            self.atr = Decimal(repr(value))

    def check_exit(self, price: Decimal) -> ExitCheck:
        """Exit rules at ``price`` (also marks); keeps the raised trailing high."""
        self.mark(price)
        plan = self.exit_plan or ExitPlan()
        check = check_exit(self.exit_position(), price, plan.trailing_stop_pct)
        if self.is_open:
            self.trailing_high = check.trailing_high
        return check

    def exit_position(self) -> ExitPosition:
        return ExitPosition(
            qty=self.qty,
            entry_price=self.entry_price,
            stop_price=self.stop_price,
            take_profit_price=self.take_profit_price,
            trailing_high=self.trailing_high,
        )

    def apply(
        self, report: ExecutionReport, asset_prices: Mapping[str, Decimal] | None = None
    ) -> ApplyResult:
        """Apply the final report of an intent once; see the module docstring."""
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            return self._apply(report, asset_prices)

    def _apply(
        self, report: ExecutionReport, asset_prices: Mapping[str, Decimal] | None
    ) -> ApplyResult:
        if not report.final:
            return ApplyResult(False, "not final")
        if report.intent_id in self._applied_set:
            return ApplyResult(False, "duplicate")
        if self.symbol and report.symbol != self.symbol:
            raise ValueError(f"report for {report.symbol} applied to the book of {self.symbol}")
        self._remember(report.intent_id)
        realized_before, qty_before = self.realized_pnl, self.qty
        clamped = False
        notes: list[str] = []
        trips: list[RoundTrip] = []
        if report.status is ExecutionStatus.REJECTED:
            self.rejections += 1
        for fill in self._fills(report):
            self.fills += 1
            if fill.qty > 0:
                self.mark_price = fill.quote / fill.qty
            fee = self._fee_in_quote(fill, asset_prices, notes)
            if report.side is Side.BUY:
                self._buy(fill, fee, report.ts)
            else:
                was_clamped, trip = self._sell(fill, fee, report)
                clamped = clamped or was_clamped
                if trip is not None:
                    trips.append(trip)
        if clamped:
            self.clamped_sells += 1
            notes.append("sell exceeded the position and was clamped")
        self._track_drawdown()
        return ApplyResult(
            True,
            "; ".join(notes),
            self.realized_pnl - realized_before,
            self.qty - qty_before,
            clamped,
            tuple(trips),
        )

    def _remember(self, intent_id: str) -> None:
        if len(self._applied) == self._applied.maxlen:
            self._applied_set.discard(self._applied[0])
        self._applied.append(intent_id)
        self._applied_set.add(intent_id)

    def _fills(self, report: ExecutionReport) -> Iterable[_Fill]:
        if report.fills:
            for f in report.fills:
                yield _Fill(f.qty, f.price * f.qty, f.commission, f.commission_asset)
        elif report.executed_qty > 0:
            quote = report.cumulative_quote or report.avg_price * report.executed_qty
            yield _Fill(report.executed_qty, quote, report.commission, report.commission_asset)

    def _fee_in_quote(
        self, fill: _Fill, asset_prices: Mapping[str, Decimal] | None, notes: list[str]
    ) -> Decimal:
        if fill.commission == 0:
            return ZERO
        if fill.asset == self.quote_asset:
            return fill.commission
        if fill.asset == self.base_asset:  # valued at the fill price
            return (
                (fill.commission * fill.quote / fill.qty).quantize(_QUANTUM) if fill.qty else ZERO
            )
        rate = (asset_prices or {}).get(fill.asset)
        if rate is not None:
            return fill.commission * rate
        self.unpriced_fees[fill.asset] = self.unpriced_fees.get(fill.asset, ZERO) + fill.commission
        notes.append(f"commission in {fill.asset} has no price; left out of PnL")
        return ZERO

    def _buy(self, fill: _Fill, fee: Decimal, ts: int) -> None:
        base_fee = fill.commission if fill.asset == self.base_asset else ZERO
        received = max(fill.qty - base_fee, ZERO)
        if base_fee:  # paid ``quote`` for ``received``: the rest of it is the fee
            basis = (fill.quote * received / fill.qty).quantize(_QUANTUM) if fill.qty else ZERO
            fee = fill.quote - basis
        else:
            basis = fill.quote
        if not self.is_open:
            self.opened_at = ts
            self.trailing_high = None
        self.qty += received
        self.cost_basis += basis
        self.entry_fees += fee
        self.fees += fee
        self.rt_bought += received
        self.rt_cost += basis
        self.rt_fees += fee
        if self.exit_plan is not None and self.is_open:
            levels = exit_levels(self.exit_plan, self.entry_price, self.atr)
            self.stop_price, self.take_profit_price = levels.stop_price, levels.take_profit_price
            if self.trailing_high is None or self.trailing_high < self.entry_price:
                self.trailing_high = self.entry_price

    def _sell(
        self, fill: _Fill, fee: Decimal, report: ExecutionReport
    ) -> tuple[bool, RoundTrip | None]:
        base_fee = fill.commission if fill.asset == self.base_asset else ZERO
        out = fill.qty + base_fee
        proceeds = fill.quote
        clamped = out > self.qty
        if clamped:
            if out == 0 or self.qty == 0:
                return True, None
            share = self.qty / out
            out = self.qty
            proceeds = (proceeds * share).quantize(_QUANTUM)
            fee = (fee * share).quantize(_QUANTUM)
        if out == 0:
            return False, None
        remaining = self.qty - out
        dust = remaining if remaining <= self.dust_qty else ZERO
        if remaining == dust:  # all of it goes: no rounding residue left behind
            basis_out, fees_out = self.cost_basis, self.entry_fees
        else:
            basis_out = (self.cost_basis * out / self.qty).quantize(_QUANTUM)
            fees_out = (self.entry_fees * out / self.qty).quantize(_QUANTUM)
        pnl = proceeds - basis_out - fees_out - fee
        self.qty = remaining - dust
        self.cost_basis -= basis_out
        self.entry_fees -= fees_out
        self.realized_pnl += pnl
        self.fees += fee
        self.rt_sold += out
        self.rt_proceeds += proceeds
        self.rt_fees += fee
        self.rt_pnl += pnl
        if self.qty > 0:
            return clamped, None
        return clamped, self._close_trip(report, dust)

    def _close_trip(self, report: ExecutionReport, dust: Decimal) -> RoundTrip:
        trip = RoundTrip(
            symbol=report.symbol,
            opened_at=self.opened_at,
            closed_at=report.ts,
            qty=self.rt_bought,
            entry_price=self.rt_cost / self.rt_bought if self.rt_bought else ZERO,
            exit_price=self.rt_proceeds / self.rt_sold if self.rt_sold else ZERO,
            cost=self.rt_cost,
            proceeds=self.rt_proceeds,
            fees=self.rt_fees,
            pnl=self.rt_pnl,
            pnl_pct=self.rt_pnl / self.rt_cost * _HUNDRED if self.rt_cost else ZERO,
            exit_reason=report.reason,
            dust=dust,
        )
        self.trades += 1
        if self.rt_pnl > 0:
            self.wins += 1
        else:
            self.losses += 1
        self.qty = self.cost_basis = self.entry_fees = ZERO
        self.rt_bought = self.rt_cost = self.rt_sold = self.rt_proceeds = self.rt_fees = (
            self.rt_pnl
        ) = ZERO
        self.opened_at = 0
        self.stop_price = self.take_profit_price = self.trailing_high = None
        return trip

    def _track_drawdown(self) -> None:
        equity = self.equity
        peak = self.peak_equity if self.peak_equity is not None else equity
        if equity > peak:
            peak = equity
        self.peak_equity = peak
        drawdown = peak - equity
        if drawdown > self.max_drawdown:
            self.max_drawdown = drawdown
        if peak > 0:
            pct = drawdown / peak * _HUNDRED
            if pct > self.max_drawdown_pct:
                self.max_drawdown_pct = pct

    # --- persistence: flat str -> str hashes ----------------------------------------

    def to_position_hash(self) -> dict[str, str]:
        """``bot:{id}:position``: the open position and its round trip so far."""
        return {
            "qty": _fmt(self.qty),
            "entry_price": _fmt(self.entry_price),
            "cost_basis": _fmt(self.cost_basis),
            "entry_fees": _fmt(self.entry_fees),
            "stop_price": _opt(self.stop_price),
            "take_profit_price": _opt(self.take_profit_price),
            "trailing_high": _opt(self.trailing_high),
            "atr": _opt(self.atr),
            "opened_at": str(self.opened_at),
            "rt_bought": _fmt(self.rt_bought),
            "rt_cost": _fmt(self.rt_cost),
            "rt_sold": _fmt(self.rt_sold),
            "rt_proceeds": _fmt(self.rt_proceeds),
            "rt_fees": _fmt(self.rt_fees),
            "rt_pnl": _fmt(self.rt_pnl),
        }

    def to_stats_hash(self) -> dict[str, str]:
        """``bot:{id}:stats``: PnL and counters (derived figures included for readers)."""
        return {
            "symbol": self.symbol,
            "base_asset": self.base_asset,
            "quote_asset": self.quote_asset,
            "allocation": _fmt(self.allocation),
            "dust_qty": _fmt(self.dust_qty),
            "realized_pnl": _fmt(self.realized_pnl),
            "unrealized_pnl": _fmt(self.unrealized_pnl),
            "total_pnl": _fmt(self.total_pnl),
            "fees": _fmt(self.fees),
            "trades": str(self.trades),
            "wins": str(self.wins),
            "losses": str(self.losses),
            "win_rate": _fmt(self.win_rate),
            "equity": _fmt(self.equity),
            "peak_equity": _opt(self.peak_equity),
            "max_drawdown": _fmt(self.max_drawdown),
            "max_drawdown_pct": _fmt(self.max_drawdown_pct),
            "mark_price": _opt(self.mark_price),
            "clamped_sells": str(self.clamped_sells),
            "fills": str(self.fills),
            "rejections": str(self.rejections),
            "unpriced_fees": json.dumps(
                {k: _fmt(v) for k, v in sorted(self.unpriced_fees.items())}
            ),
            "applied_intents": json.dumps(list(self._applied)),
        }

    def to_hash(self) -> dict[str, str]:
        return {**self.to_position_hash(), **self.to_stats_hash()}

    @classmethod
    def from_hash(cls, data: Mapping[Any, Any], exit_plan: ExitPlan | None = None) -> BotBook:
        """Inverse of :meth:`to_hash` (or of both hashes merged); accepts bytes from Redis.
        Derived fields (entry price, equity, ...) are recomputed, not read."""
        d = {_text(k): _text(v) for k, v in data.items()}

        def dec(name: str) -> Decimal:
            return Decimal(d[name]) if d.get(name) else ZERO

        def opt(name: str) -> Decimal | None:
            return Decimal(d[name]) if d.get(name) else None

        try:
            book = cls(
                allocation=Decimal(d["allocation"]),
                base_asset=d["base_asset"],
                quote_asset=d["quote_asset"],
                symbol=d.get("symbol", ""),
                dust_qty=dec("dust_qty"),
                exit_plan=exit_plan,
                qty=dec("qty"),
                cost_basis=dec("cost_basis"),
                entry_fees=dec("entry_fees"),
                opened_at=int(d.get("opened_at") or 0),
                stop_price=opt("stop_price"),
                take_profit_price=opt("take_profit_price"),
                trailing_high=opt("trailing_high"),
                atr=opt("atr"),
                rt_bought=dec("rt_bought"),
                rt_cost=dec("rt_cost"),
                rt_sold=dec("rt_sold"),
                rt_proceeds=dec("rt_proceeds"),
                rt_fees=dec("rt_fees"),
                rt_pnl=dec("rt_pnl"),
                realized_pnl=dec("realized_pnl"),
                fees=dec("fees"),
                trades=int(d.get("trades") or 0),
                wins=int(d.get("wins") or 0),
                losses=int(d.get("losses") or 0),
                mark_price=opt("mark_price"),
                peak_equity=opt("peak_equity"),
                max_drawdown=dec("max_drawdown"),
                max_drawdown_pct=dec("max_drawdown_pct"),
                clamped_sells=int(d.get("clamped_sells") or 0),
                fills=int(d.get("fills") or 0),
                rejections=int(d.get("rejections") or 0),
                unpriced_fees={
                    k: Decimal(v) for k, v in json.loads(d.get("unpriced_fees") or "{}").items()
                },
            )
        except (KeyError, ArithmeticError, ValueError) as exc:
            raise ValueError(f"invalid bot book hash: {exc!r}") from exc
        for intent_id in json.loads(d.get("applied_intents") or "[]"):
            book._remember(str(intent_id))
        return book
