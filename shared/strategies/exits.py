"""Exit rules of a long position, pure: stop-loss, take-profit and trailing stop.

The runner calls :func:`check_exit` on every tick of a bot's symbol while the bot holds
a position, persists the returned trailing high when it rose, and sends a SELL for the
whole position when a reason comes back. Exits are never blocked by portfolio risk
(DESIGN "Ownership and failure").

Stop-loss and take-profit are set in percent of the entry price, in multiples of the
ATR (``stop_loss_atr``: entry minus k x ATR; ``take_profit_atr``: entry plus k x ATR;
the ATR is the strategy's, of the last closed candle before the entry fill, reported
by every strategy fed whole candles), or both: then the stop is the nearer (higher)
one and so is the take-profit (the lower one), so each rule still holds.

When one price crosses several levels at once (a gap down through both the trailing
stop and the stop-loss), the reason is the level the price met first on its way down,
i.e. the highest one crossed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

_HUNDRED = Decimal(100)


class ExitReason(enum.StrEnum):
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    TRAILING_STOP = "TRAILING_STOP"


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """A bot's exit settings in percent of the entry price (trailing: of the high) and
    in multiples of the ATR at entry."""

    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    trailing_stop_pct: Decimal | None = None
    stop_loss_atr: Decimal | None = None
    take_profit_atr: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExitLevels:
    stop_price: Decimal | None
    take_profit_price: Decimal | None


@dataclass(frozen=True, slots=True)
class ExitPosition:
    """What the exit rules need of a position."""

    qty: Decimal
    entry_price: Decimal
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    trailing_high: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExitCheck:
    """Verdict on one price. ``trailing_high`` is the updated high (persist it when
    ``trailing_high_changed``); ``level`` is the price level that was crossed."""

    reason: ExitReason | None
    trailing_high: Decimal | None
    trailing_high_changed: bool = False
    level: Decimal | None = None


def exit_levels(plan: ExitPlan, entry_price: Decimal, atr: Decimal | None = None) -> ExitLevels:
    """Stop-loss and take-profit prices of a position entered at ``entry_price`` (ATR
    levels only when ``atr`` is known; an ATR stop at or below zero is no stop)."""
    stops: list[Decimal] = []
    takes: list[Decimal] = []
    if plan.stop_loss_pct is not None:
        stops.append(entry_price * (_HUNDRED - plan.stop_loss_pct) / _HUNDRED)
    if plan.take_profit_pct is not None:
        takes.append(entry_price * (_HUNDRED + plan.take_profit_pct) / _HUNDRED)
    if atr is not None and atr > 0:
        if plan.stop_loss_atr is not None and entry_price - plan.stop_loss_atr * atr > 0:
            stops.append(entry_price - plan.stop_loss_atr * atr)
        if plan.take_profit_atr is not None:
            takes.append(entry_price + plan.take_profit_atr * atr)
    return ExitLevels(max(stops) if stops else None, min(takes) if takes else None)


def trailing_stop_price(trailing_high: Decimal, trailing_stop_pct: Decimal) -> Decimal:
    return trailing_high * (_HUNDRED - trailing_stop_pct) / _HUNDRED


def check_exit(
    position: ExitPosition, price: Decimal, trailing_stop_pct: Decimal | None = None
) -> ExitCheck:
    """Which exit, if any, ``price`` triggers, and the trailing high after it.

    The trailing high starts at the entry price and only rises; it is tracked even
    without a trailing stop so that one can be switched on later.
    """
    high = position.trailing_high
    if position.qty <= 0:
        return ExitCheck(None, high)
    new_high = max(high if high is not None else position.entry_price, price)
    changed = new_high != high
    crossed: list[tuple[Decimal, ExitReason]] = []
    if position.stop_price is not None and price <= position.stop_price:
        crossed.append((position.stop_price, ExitReason.STOP_LOSS))
    if trailing_stop_pct is not None:
        trail = trailing_stop_price(new_high, trailing_stop_pct)
        if price <= trail:
            crossed.append((trail, ExitReason.TRAILING_STOP))
    if crossed:
        level, reason = max(crossed, key=lambda item: item[0])
        return ExitCheck(reason, new_high, changed, level)
    if position.take_profit_price is not None and price >= position.take_profit_price:
        return ExitCheck(ExitReason.TAKE_PROFIT, new_high, changed, position.take_profit_price)
    return ExitCheck(None, new_high, changed)
