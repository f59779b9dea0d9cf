"""The fill model, pure: what an order of a bot gets at a price (docs/backtest.md,
"Fill model"). The backtester and the paper gateway (``services/gateway/paper.py``)
both fill with these functions, and the exchange simulator's matching computes its
fills' amounts with :func:`fill_at`, so the same prices give the same fills.

MARKET (:func:`market_fill`): the price is the reference price (the next price after
the decision) moved against the order by the slippage, quantized to 1e-8; a
quote-sized BUY spends the quote amount including the fee (fee in quote) and its
quantity is rounded down to the step; a quantity-sized SELL sells the quantity given
(already rounded by :func:`prepare_market`). LIMIT (:func:`limit_fill`): fills whole
when the price crosses the limit (:func:`crosses`); on arrival at the better of the
limit and the slipped price, as taker; resting, later, at the limit, as maker.

``fee_asset="base"`` is how Binance charges a BUY without BNB: the commission is taken
from the base asset received (``qty * fee``), so the book receives less than it bought
and a later SELL rounded down to the step leaves dust below one step (the book writes
it off at cost, as live). SELL commissions are in the quote asset either way.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Literal

import msgspec

from shared.binance.rules import OrderCheckError, SymbolRules, round_to_step, validate_order
from shared.messages import OrderType, Side

PLACES = Decimal("1e-8")  # prices and amounts, as the venue quotes them
FeeAsset = Literal["quote", "base"]


class Costs(msgspec.Struct, frozen=True, kw_only=True):
    """Taker and maker fee rates, slippage (a fraction of the price) and the asset BUY
    fees are in."""

    taker_fee: Decimal = Decimal("0.001")
    slippage: Decimal = Decimal("0.0005")
    fee_asset: FeeAsset = "quote"
    maker_fee: Decimal = Decimal("0.001")


class MarketFill(msgspec.Struct, frozen=True, kw_only=True):
    """One complete fill: ``quote`` is price * qty; ``commission`` in ``commission_asset``."""

    price: Decimal
    qty: Decimal
    quote: Decimal
    commission: Decimal
    commission_asset: str


class OrderRefused(ValueError):
    """The order would not pass the exchange filters (the filter is named)."""


def prepare_market(
    rules: SymbolRules,
    side: Side,
    last_price: Decimal,
    *,
    quantity: Decimal | None = None,
    quote_quantity: Decimal | None = None,
) -> tuple[Decimal | None, Decimal | None]:
    """(quantity, quote_quantity) rounded as the gateway rounds them and checked against
    the stateless filters (LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL/MIN_NOTIONAL)."""
    if quantity is not None:
        step = rules.market_step_size or rules.step_size
        quantity = round_to_step(quantity, step)
        if quantity <= 0:
            raise OrderRefused(f"filter LOT_SIZE: quantity rounds to 0 at step {step}")
    elif quote_quantity is not None:
        exp = Decimal(1).scaleb(-rules.quote_precision)
        quote_quantity = quote_quantity.quantize(exp, rounding=ROUND_DOWN)
    try:
        validate_order(
            rules,
            side,
            OrderType.MARKET,
            quantity,
            None,
            last_price,
            quote_quantity=quote_quantity,
        )
    except OrderCheckError as exc:
        name = getattr(exc, "filter_name", None)
        detail = f" ({exc.detail})" if exc.detail else ""
        raise OrderRefused(f"filter {name}{detail}" if name else f"{exc.msg}{detail}") from exc
    return quantity, quote_quantity


def slipped(side: Side, price: Decimal, slippage: Decimal) -> Decimal:
    """``price`` moved against an order of ``side`` by ``slippage``, quantized to 1e-8."""
    moved = price * (1 + slippage) if side is Side.BUY else price * (1 - slippage)
    return moved.quantize(PLACES)


def crosses(side: Side, limit_price: Decimal, last_price: Decimal) -> bool:
    """Would a LIMIT order of ``side`` at ``limit_price`` trade at ``last_price``?"""
    return last_price <= limit_price if side is Side.BUY else last_price >= limit_price


def fill_at(
    side: Side,
    price: Decimal,
    qty: Decimal,
    rate: Decimal,
    fee_asset: FeeAsset,
    base_asset: str,
    quote_asset: str,
) -> MarketFill:
    """The amounts of a whole fill of ``qty`` at ``price`` (the price already final):
    ``quote = price * qty`` and the commission at ``rate``, both quantized to 1e-8; a
    BUY's commission is ``qty * rate`` in base with ``fee_asset="base"`` (what the
    exchange simulator charges: a fee on the asset received), else ``quote * rate``."""
    quote = (price * qty).quantize(PLACES)
    if side is Side.BUY and fee_asset == "base":
        return MarketFill(
            price=price,
            qty=qty,
            quote=quote,
            commission=(qty * rate).quantize(PLACES),
            commission_asset=base_asset,
        )
    return MarketFill(
        price=price,
        qty=qty,
        quote=quote,
        commission=(quote * rate).quantize(PLACES),
        commission_asset=quote_asset,
    )


def market_fill(
    side: Side,
    last_price: Decimal,
    costs: Costs,
    step_size: Decimal,
    base_asset: str,
    quote_asset: str,
    *,
    quantity: Decimal | None = None,
    quote_quantity: Decimal | None = None,
) -> MarketFill | None:
    """The fill of a MARKET order at ``last_price``; None when its quantity rounds to 0."""
    price = slipped(side, last_price, costs.slippage)
    fee = costs.taker_fee
    in_base = side is Side.BUY and costs.fee_asset == "base"
    if quantity is not None:
        qty = quantity
    else:
        assert quote_quantity is not None
        spend = quote_quantity if in_base or side is Side.SELL else quote_quantity / (1 + fee)
        qty = round_to_step(spend / price, step_size)
    if qty <= 0:
        return None
    return fill_at(side, price, qty, fee, costs.fee_asset, base_asset, quote_asset)


def limit_fill(
    side: Side,
    limit_price: Decimal,
    quantity: Decimal,
    last_price: Decimal,
    costs: Costs,
    base_asset: str,
    quote_asset: str,
    *,
    resting: bool = False,
) -> MarketFill | None:
    """The whole fill of a LIMIT order at ``last_price``, or None when it does not cross:
    on arrival (taker) at the better of the limit and the slipped price, resting (maker)
    at its own limit."""
    if quantity <= 0 or not crosses(side, limit_price, last_price):
        return None
    if resting:
        price, rate = limit_price, costs.maker_fee
    else:
        moved = slipped(side, last_price, costs.slippage)
        price = min(limit_price, moved) if side is Side.BUY else max(limit_price, moved)
        rate = costs.taker_fee
    return fill_at(
        side, price.quantize(PLACES), quantity, rate, costs.fee_asset, base_asset, quote_asset
    )


def net_amounts(
    side: Side, fill: MarketFill, base_asset: str, quote_asset: str
) -> tuple[Decimal, Decimal]:
    """(base, quote) a fill moves, net of its commission: a BUY receives ``qty`` less a
    base commission and pays ``quote`` plus a quote commission; a SELL gives ``qty`` and
    receives ``quote`` less the commission."""
    fee = fill.commission
    if side is Side.BUY:
        if fill.commission_asset == base_asset:
            return fill.qty - fee, fill.quote
        return fill.qty, fill.quote + (fee if fill.commission_asset == quote_asset else 0)
    return fill.qty, fill.quote - (fee if fill.commission_asset == quote_asset else 0)
