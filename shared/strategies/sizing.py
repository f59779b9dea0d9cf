"""Entry sizing, pure: how much a bot buys, from its sizing rule, equity and the price.

Quantities are not rounded to the symbol's LOT_SIZE here; the exchange filters
(``shared.binance``) do that where the order is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.strategies.config import FixedQuoteSizing, PercentEquitySizing, RiskSizing

_HUNDRED = Decimal(100)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class EntrySize:
    quote: Decimal  # quote asset to spend
    qty: Decimal  # base quantity at ``price`` (unrounded)
    capped: bool = False  # the rule asked for more than ``available``


def stop_distance(price: Decimal, stop_loss_pct: Decimal) -> Decimal:
    """Price distance from an entry at ``price`` to its stop-loss."""
    return price * stop_loss_pct / _HUNDRED


def size_entry(
    sizing: FixedQuoteSizing | PercentEquitySizing | RiskSizing,
    *,
    equity: Decimal,
    price: Decimal,
    stop_distance: Decimal | None = None,
    available: Decimal | None = None,
) -> EntrySize:
    """Quote amount and quantity of a new entry.

    ``equity`` is the bot's equity (allocation + realized + unrealized PnL);
    ``available`` the quote it may spend now (defaults to ``equity``: a flat bot's cash);
    ``stop_distance`` (price minus stop price) is required by :class:`RiskSizing`.
    Never more than ``available``; zero when there is nothing to spend.
    """
    if price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    cap = equity if available is None else available
    if isinstance(sizing, FixedQuoteSizing):
        quote = sizing.quote_amount
    elif isinstance(sizing, PercentEquitySizing):
        quote = equity * sizing.percent / _HUNDRED
    else:
        if stop_distance is None or stop_distance <= 0:
            raise ValueError("risk sizing needs a positive stop_distance")
        quote = equity * sizing.risk_pct / _HUNDRED / stop_distance * price
    quote = max(quote, _ZERO)
    capped = quote > cap
    if capped:
        quote = max(cap, _ZERO)
    return EntrySize(quote=quote, qty=quote / price, capped=capped)
