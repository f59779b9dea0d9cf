"""Money as integer units of 1e-8: how amounts are stored where Redis does the arithmetic.

Lua numbers are doubles (DESIGN "Traps"), so the gateway's scripts never compute with
a decimal string: ``risk:state`` and ``balances:paper`` hold integer strings of units
of 1e-8 (``"100000000"`` is 1), changed only with ``HINCRBY`` (exact 64-bit integers in
Redis) and compared as strings. 1e-8 is the venue's own grain: Binance quotes every
price, quantity and commission with at most 8 decimals and caps an order's quantity at
92,233,720,368 (its own int64 of 1e-8 units). The range is therefore ±9.2e10 of an
asset per figure; the scripts refuse a change that would carry a figure past
``FIGURE_LIMIT`` (7e10), and :func:`to_units` refuses one amount past ``AMOUNT_LIMIT``
(1e10), so two changes of one figure in one call can never overflow. Amounts up to
1e12 quote would need a wider type than Redis has; no venue order comes near 1e10.

Readers convert with :func:`from_units` / :func:`units_text`; nothing converts through
a float.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

PLACES = 8
UNIT = Decimal(1).scaleb(-PLACES)
_SCALE = Decimal(10**PLACES)
AMOUNT_LIMIT = 10**18  # units: 1e10 of an asset in one amount handed to a script
FIGURE_LIMIT = 7 * 10**18  # units: a stored figure past this refuses further changes
AMOUNT_MAX = Decimal(AMOUNT_LIMIT).scaleb(-PLACES) - UNIT  # the largest amount, 1e10 - 1e-8


class AmountOutOfRange(ValueError):
    """An amount whose units do not fit the scripts' range (or is not finite)."""


def to_units(amount: Decimal, *, rounding: str = ROUND_HALF_EVEN, limit: int = AMOUNT_LIMIT) -> int:
    """``amount`` in integer units of 1e-8 (venue amounts have at most 8 places, so this
    is exact for them; an estimate with more places is rounded with ``rounding``).
    ``limit``: the bound on its units (an amount of one change, or a whole figure)."""
    try:
        # exact for any amount within range (28 digits of context); rounding only bites
        # on an estimate with more than 8 places
        units = int((amount * _SCALE).to_integral_value(rounding=rounding))
    except (ArithmeticError, ValueError) as exc:  # NaN, sNaN, Infinity
        raise AmountOutOfRange(f"amount {amount} is not finite") from exc
    if not -limit < units < limit:
        raise AmountOutOfRange(f"amount {amount} is out of range (|x| < {limit}e-{PLACES})")
    return units


def to_units_ceiling(amount: Decimal) -> int:
    """Units of an estimate that must not be under-counted (a reservation)."""
    return to_units(amount, rounding=ROUND_CEILING)


def units_arg(amount: Decimal) -> str:
    """An amount as a script argument: its units as an integer string."""
    return str(to_units(amount))


def from_units(text: str | bytes | int | None) -> Decimal:
    """The amount an integer-units value stands for (missing = 0), exactly."""
    if text is None:
        return Decimal(0).scaleb(-PLACES)
    raw = text.decode() if isinstance(text, bytes) else str(text)
    return Decimal(int(raw)).scaleb(-PLACES)


def units_text(text: str | bytes | int | None) -> str:
    """A stored units value as a readable decimal string with 8 places."""
    return f"{from_units(text):f}"
