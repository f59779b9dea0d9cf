"""Static guard rails (DESIGN "Traps": a leaked key trades): pure checks no runner or API
caller can override, set only in the gateway's own settings.

The rate rails (orders per bot and per fleet per minute) need shared counters and are
applied atomically in ``lua/admit.lua``; their names are defined here with the others.
An exit that sells no more than the position the gateway recorded for the bot is exempt
from every rail (a stop-loss must never be trapped), which ``admit.lua`` decides.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

ALLOWED_SYMBOLS = "allowed_symbols"
MAX_ORDER_NOTIONAL = "max_order_notional"
MAX_BOT_ORDER_RATE = "max_bot_order_rate"
MAX_FLEET_ORDER_RATE = "max_fleet_order_rate"
RAILS = (ALLOWED_SYMBOLS, MAX_ORDER_NOTIONAL, MAX_BOT_ORDER_RATE, MAX_FLEET_ORDER_RATE)

RATE_WINDOW_S = 60


class Rails(msgspec.Struct, frozen=True, kw_only=True):
    """The configured rails; empty ``allowed_symbols`` and zero limits mean "no rail"."""

    allowed_symbols: frozenset[str] = frozenset()
    max_order_notional: Decimal = Decimal(0)
    bot_orders_per_window: int = 0
    fleet_orders_per_window: int = 0


def static_rail_violation(rails: Rails, symbol: str, notional: Decimal) -> str:
    """``""`` if the order passes the static rails, else ``"<rail>: <why>"``."""
    if rails.allowed_symbols and symbol not in rails.allowed_symbols:
        return f"{ALLOWED_SYMBOLS}: {symbol} is not an allowed symbol"
    if rails.max_order_notional > 0 and notional > rails.max_order_notional:
        return f"{MAX_ORDER_NOTIONAL}: notional {notional} > {rails.max_order_notional}"
    return ""


def rail_name(reason: str) -> str:
    """The rail a rejection reason names (its text up to the first colon)."""
    return reason.partition(":")[0]


def rate_window(now_ms: int) -> int:
    """Index of the fixed rate window containing ``now_ms``."""
    return now_ms // (RATE_WINDOW_S * 1000)
