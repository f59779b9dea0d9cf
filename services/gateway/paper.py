"""The paper matching engine (pure): what a paper order would have done at a price.

MARKET orders fill at the last price moved against the order by the slippage, paying
the taker fee; LIMIT orders fill when the last price crosses their limit: on arrival at the better of
the limit and the slipped price (taker fee), later off the book at the limit (maker fee). Fees are charged in the quote asset. A quote-sized MARKET
BUY spends the quote amount including the fee, its quantity rounded down to the step.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.gateway.sizing import PreparedOrder
from shared.binance.rules import round_to_step
from shared.messages import OrderType, Side, TimeInForce

_PLACES = Decimal("1e-8")  # paper prices and amounts, as the venue quotes them


class PaperCosts(msgspec.Struct, frozen=True, kw_only=True):
    taker_fee: Decimal
    maker_fee: Decimal
    slippage: Decimal


class PaperFill(msgspec.Struct, frozen=True, kw_only=True):
    """One complete fill: ``quote`` is price * qty, ``commission`` in the quote asset."""

    price: Decimal
    qty: Decimal
    quote: Decimal
    commission: Decimal
    commission_asset: str


def crosses(order: PreparedOrder, last_price: Decimal) -> bool:
    """Would a LIMIT order trade at ``last_price``?"""
    assert order.price is not None
    if order.side is Side.BUY:
        return last_price <= order.price
    return last_price >= order.price


def _slipped(side: Side, last_price: Decimal, slippage: Decimal) -> Decimal:
    return last_price * (1 + slippage) if side is Side.BUY else last_price * (1 - slippage)


def match(
    order: PreparedOrder,
    last_price: Decimal,
    costs: PaperCosts,
    step_size: Decimal,
    *,
    resting: bool = False,
) -> PaperFill | None:
    """The fill of ``order`` at ``last_price``, or None when a LIMIT order does not cross."""
    fee_rate = costs.maker_fee if resting else costs.taker_fee
    if order.order_type is OrderType.MARKET:
        price = _slipped(order.side, last_price, costs.slippage)
        if order.quantity is not None:
            qty = order.quantity
        else:
            assert order.quote_quantity is not None
            spend = (
                order.quote_quantity / (1 + fee_rate)
                if order.side is Side.BUY
                else order.quote_quantity
            )
            qty = round_to_step(spend / price, step_size)
    else:
        assert order.price is not None and order.quantity is not None
        if not crosses(order, last_price):
            return None
        if resting:  # a resting order is hit at its own limit price (maker)
            price = order.price
        else:
            slipped = _slipped(order.side, last_price, costs.slippage)
            price = (
                min(order.price, slipped) if order.side is Side.BUY else max(order.price, slipped)
            )
        qty = order.quantity
    if qty <= 0:
        return None
    price = price.quantize(_PLACES)
    quote = (price * qty).quantize(_PLACES)
    return PaperFill(
        price=price,
        qty=qty,
        quote=quote,
        commission=(quote * fee_rate).quantize(_PLACES),
        commission_asset=order.quote_asset,
    )


def rests(order: PreparedOrder) -> bool:
    """A non-crossing LIMIT order rests on the book (GTC) or expires (IOC, FOK)."""
    return order.order_type is OrderType.LIMIT and order.time_in_force in (None, TimeInForce.GTC)


def balance_effect(
    order: PreparedOrder, fill: PaperFill
) -> tuple[str, Decimal, dict[str, Decimal]]:
    """(asset to check, amount needed, deltas of free balances) of a paper fill."""
    if order.side is Side.BUY:
        spent = fill.quote + fill.commission
        return order.quote_asset, spent, {order.quote_asset: -spent, order.base_asset: fill.qty}
    received = fill.quote - fill.commission
    return order.base_asset, fill.qty, {order.base_asset: -fill.qty, order.quote_asset: received}
