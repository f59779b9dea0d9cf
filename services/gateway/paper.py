"""The paper matching engine (pure): what a paper order would have done at a price.

The fills are the shared fill model's (:mod:`shared.fills`, docs/backtest.md "Fill
model"), the one the backtester fills with: MARKET orders fill at the last price moved
against the order by the slippage, paying the taker fee; LIMIT orders fill when the
last price crosses their limit: on arrival at the better of the limit and the slipped
price (taker fee), later off the book at the limit (maker fee). A quote-sized MARKET BUY
spends the quote amount including the fee, its quantity rounded down to the step.
Fees are in the quote asset, or, with ``fee_asset="base"`` (Binance without BNB), a
BUY's commission is taken from the base asset received, as live.
"""

from __future__ import annotations

from decimal import Decimal

from services.gateway.sizing import PreparedOrder
from shared.fills import Costs, MarketFill, limit_fill, market_fill, net_amounts
from shared.fills import crosses as limit_crosses
from shared.messages import OrderType, Side, TimeInForce

PaperCosts = Costs  # taker_fee, maker_fee, slippage, fee_asset
PaperFill = MarketFill  # price, qty, quote (price * qty), commission, commission_asset


def crosses(order: PreparedOrder, last_price: Decimal) -> bool:
    """Would a LIMIT order trade at ``last_price``?"""
    assert order.price is not None
    return limit_crosses(order.side, order.price, last_price)


def match(
    order: PreparedOrder,
    last_price: Decimal,
    costs: PaperCosts,
    step_size: Decimal,
    *,
    resting: bool = False,
) -> PaperFill | None:
    """The fill of ``order`` at ``last_price``, or None when a LIMIT order does not cross."""
    base, quote = order.base_asset, order.quote_asset
    if order.order_type is OrderType.MARKET:
        return market_fill(
            order.side,
            last_price,
            costs,
            step_size,
            base,
            quote,
            quantity=order.quantity,
            quote_quantity=order.quote_quantity,
        )
    assert order.price is not None and order.quantity is not None
    return limit_fill(
        order.side, order.price, order.quantity, last_price, costs, base, quote, resting=resting
    )


def rests(order: PreparedOrder) -> bool:
    """A non-crossing LIMIT order rests on the book (GTC) or expires (IOC, FOK)."""
    return order.order_type is OrderType.LIMIT and order.time_in_force in (None, TimeInForce.GTC)


def position_effect(order: PreparedOrder, fill: PaperFill) -> tuple[Decimal, Decimal]:
    """(position quantity, quote amount) of a paper fill, as the live gateway counts an
    exchange fill: net of a base commission on a BUY, a quote commission added to a BUY's
    cost and taken from a SELL's proceeds."""
    return net_amounts(order.side, fill, order.base_asset, order.quote_asset)


def balance_effect(
    order: PreparedOrder, fill: PaperFill
) -> tuple[str, Decimal, dict[str, Decimal]]:
    """(asset to check, amount needed, deltas of free balances) of a paper fill."""
    base_amount, quote_amount = position_effect(order, fill)
    if order.side is Side.BUY:
        return (
            order.quote_asset,
            quote_amount,
            {order.quote_asset: -quote_amount, order.base_asset: base_amount},
        )
    return (
        order.base_asset,
        fill.qty,
        {order.base_asset: -fill.qty, order.quote_asset: quote_amount},
    )
