"""``risk:state``: its field names and the arithmetic the scripts may not do (pure).

The hash (gateway-owned) holds the fleet's portfolio figures as integer units of 1e-8
(:mod:`shared.money`), changed by ``admit.lua`` and ``finalize.lua`` with ``HINCRBY``:

==========================  ========================================================
field                       meaning
==========================  ========================================================
exposure                    quote cost of open positions (+ reserved entries), fleet
exposure:{SYMBOL}           the same for one symbol
open_positions              number of (bot, symbol) positions held (a count)
pos:{bot}:{SYMBOL}:qty      base quantity the gateway has filled for the bot
pos:{bot}:{SYMBOL}:cost     quote cost of that quantity (fees included)
realized:{YYYYMMDD}         realized PnL of the UTC day
realized_total              cumulative realized PnL
realized_peak               highest ``realized_total`` so far
==========================  ========================================================

Additions and comparisons happen in Redis (exact); what needs a product or a quotient
-- the cost a partial sell takes out of a position, its realized PnL, the drawdown --
is computed here with Decimal. A sell's figures are handed to ``finalize.lua`` with the
position they were computed from, and the script refuses them (``conflict``) if the
position changed meanwhile: the caller reads it again and recomputes.
"""

from __future__ import annotations

import enum
import functools
from decimal import ROUND_HALF_EVEN, Decimal

import msgspec

from shared.money import from_units


class RiskField(enum.StrEnum):
    EXPOSURE = "exposure"
    OPEN_POSITIONS = "open_positions"
    REALIZED_TOTAL = "realized_total"
    REALIZED_PEAK = "realized_peak"


# (cached: a handful of symbols, bots and days, looked up for every intent)
@functools.lru_cache(maxsize=1024)
def symbol_exposure_field(symbol: str) -> str:
    return f"{RiskField.EXPOSURE.value}:{symbol}"


@functools.lru_cache(maxsize=16384)
def position_fields(bot: str, symbol: str) -> tuple[str, str]:
    """(qty field, cost field) of a bot's position in a symbol."""
    return f"pos:{bot}:{symbol}:qty", f"pos:{bot}:{symbol}:cost"


@functools.lru_cache(maxsize=8)
def day_field(day: str) -> str:
    """Realized PnL of a UTC day (``YYYYMMDD``)."""
    return f"realized:{day}"


class Position(msgspec.Struct, frozen=True):
    """A position as stored: integer units, ``None`` for an absent field."""

    qty: int | None
    cost: int | None

    @staticmethod
    def parse(qty: bytes | str | None, cost: bytes | str | None) -> Position:
        return Position(
            int(qty) if qty is not None else None, int(cost) if cost is not None else None
        )

    def expect(self) -> tuple[str, str]:
        """The stored strings ``finalize.lua`` compares with ('' = absent)."""
        return (
            str(self.qty) if self.qty is not None else "",
            str(self.cost) if self.cost is not None else "",
        )


EMPTY = Position(None, None)


class SellSplit(msgspec.Struct, frozen=True):
    """What a sell of ``qty`` units for ``quote`` units does to a position (all units)."""

    sold: int  # base units taken out of the position (at most what it holds)
    cost_out: int  # the cost that leaves the position (and the exposure)
    realized: int  # quote received for ``sold`` minus ``cost_out``
    closes: bool  # the position is gone afterwards

    def after(self, position: Position) -> Position:
        if self.sold <= 0:
            return position
        if self.closes:
            return EMPTY
        return Position((position.qty or 0) - self.sold, (position.cost or 0) - self.cost_out)


def _div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half-even to a unit (exact: Decimal, no float)."""
    return int((Decimal(numerator) / Decimal(denominator)).to_integral_value(ROUND_HALF_EVEN))


def sell_split(position: Position, qty: int, quote: int) -> SellSplit:
    """The proportional cost of selling ``qty`` of ``position`` and its realized PnL.

    A sell of more than is held (an unverified exit) takes out the whole position and
    books only the held part's share of ``quote``. The cost that leaves is rounded to a
    unit; what stays is the exact rest, so the costs taken out sum to the cost put in."""
    held, cost = position.qty or 0, position.cost or 0
    sold = min(qty, held)
    if sold <= 0 or qty <= 0:
        return SellSplit(0, 0, 0, False)
    closes = sold == held
    cost_out = cost if closes else _div(cost * sold, held)
    received = quote if sold == qty else _div(quote * sold, qty)
    return SellSplit(sold, cost_out, received - cost_out, closes)


def drawdown_breach(total: str, peak: str, limit_pct: str, equity_base: Decimal) -> str | None:
    """The halt reason if fleet equity (``equity_base`` + cumulative realized PnL, in
    quote) is ``limit_pct`` percent or more below its peak; ``total``/``peak`` in units."""
    if not limit_pct or equity_base <= 0:
        return None
    limit = Decimal(limit_pct)
    top = equity_base + from_units(peak)
    if limit <= 0 or top <= 0:
        return None
    drawdown = (from_units(peak) - from_units(total)) / top * 100
    if drawdown < limit:
        return None
    return (
        f"max_drawdown_pct: {drawdown.quantize(Decimal('0.0001'))}% below peak, limit {limit_pct}"
    )
