"""Turning an intent into an order the exchange will accept (pure).

Quantities are rounded down to the step size, LIMIT prices to the tick size (a BUY
never pays more, a SELL never sells for less), and the stateless filters are checked
with :func:`shared.binance.rules.validate_order`; an intent that fails is rejected
with the filter named and is never sent. The estimated notional (quote) feeds the
rails and the risk reservation.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import msgspec

from shared.binance.rules import (
    OrderCheckError,
    SymbolRules,
    format_decimal,
    round_price_to_tick,
    round_to_step,
    validate_order,
)
from shared.messages import OrderIntent, OrderType, Side, TimeInForce


class IntentRejected(Exception):
    """The intent cannot become an order; ``reason`` says why (for the report)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PreparedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order ready to send: exchange-valid amounts and its estimated notional."""

    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal | None
    quote_quantity: Decimal | None
    price: Decimal | None
    time_in_force: TimeInForce | None
    notional: Decimal
    base_asset: str
    quote_asset: str

    def wire_params(self, rules: SymbolRules, client_order_id: str) -> list[tuple[str, str]]:
        """Parameters of ``POST /api/v3/order`` (§3.6), FULL response."""
        params = [
            ("symbol", self.symbol),
            ("side", self.side.value),
            ("type", self.order_type.value),
        ]
        if self.order_type is OrderType.LIMIT:
            params.append(("timeInForce", (self.time_in_force or TimeInForce.GTC).value))
        if self.quantity is not None:
            params.append(("quantity", _wire(self.quantity, rules.base_precision)))
        if self.quote_quantity is not None:
            params.append(("quoteOrderQty", _wire(self.quote_quantity, rules.quote_precision)))
        if self.price is not None:
            params.append(("price", _wire(self.price, rules.quote_precision)))
        params.append(("newClientOrderId", client_order_id))
        params.append(("newOrderRespType", "FULL"))
        return params


def _wire(value: Decimal, decimals: int) -> str:
    return format_decimal(value, decimals, rounding=ROUND_DOWN)


def prepare(
    intent: OrderIntent, rules: SymbolRules | None, last_price: Decimal | None
) -> PreparedOrder:
    """Round and validate ``intent``; raises :class:`IntentRejected` naming the problem."""
    if rules is None:
        raise IntentRejected(f"unknown symbol {intent.symbol}")
    if not rules.is_trading:
        raise IntentRejected(f"symbol {intent.symbol} is not trading ({rules.status})")
    if intent.order_type.value not in rules.order_types:
        raise IntentRejected(f"order type {intent.order_type} not allowed on {intent.symbol}")
    quantity = intent.quantity
    quote = intent.quote_quantity
    price = intent.price
    if intent.order_type is OrderType.MARKET:
        if (quantity is None) == (quote is None):
            raise IntentRejected("a MARKET intent needs exactly one of quantity, quote_quantity")
        if price is not None:
            raise IntentRejected("a MARKET intent carries no price")
        if last_price is None or last_price <= 0:
            raise IntentRejected(f"no reference price for {intent.symbol}")
        if quantity is not None:
            step = rules.market_step_size or rules.step_size
            quantity = round_to_step(quantity, step)
            if quantity <= 0:
                raise IntentRejected(f"filter LOT_SIZE: quantity rounds to 0 at step {step}")
            notional = quantity * last_price
        else:
            assert quote is not None
            if not rules.quote_order_qty_market_allowed:
                raise IntentRejected(f"quote-sized MARKET orders not allowed on {intent.symbol}")
            quote = Decimal(_wire(quote, rules.quote_precision))
            notional = quote
    else:
        if quantity is None or price is None or quote is not None:
            raise IntentRejected("a LIMIT intent needs quantity and price (no quote_quantity)")
        quantity = round_to_step(quantity, rules.step_size)
        if quantity <= 0:
            raise IntentRejected(f"filter LOT_SIZE: quantity rounds to 0 at step {rules.step_size}")
        if price <= 0:
            raise IntentRejected("invalid price")
        price = round_price_to_tick(
            price, rules.tick_size, "down" if intent.side is Side.BUY else "up"
        )
        notional = quantity * price
    try:
        validate_order(
            rules,
            intent.side,
            intent.order_type,
            quantity,
            price,
            last_price,
            quote_quantity=quote,
        )
    except OrderCheckError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        name = getattr(exc, "filter_name", None)
        raise IntentRejected(f"filter {name}{detail}" if name else f"{exc.msg}{detail}") from exc
    return PreparedOrder(
        symbol=intent.symbol,
        side=intent.side,
        order_type=intent.order_type,
        quantity=quantity,
        quote_quantity=quote,
        price=price,
        time_in_force=intent.time_in_force if intent.order_type is OrderType.LIMIT else None,
        notional=notional,
        base_asset=rules.base_asset,
        quote_asset=rules.quote_asset,
    )
