"""Paper fills come from the shared fill model: with ``fee_asset="base"`` a BUY's
commission is taken from the base asset received (MARKET and LIMIT), the position and
the balances hold the net quantity, and a SELL still pays in quote, as live."""

from __future__ import annotations

from decimal import Decimal

from services.gateway.paper import PaperCosts, balance_effect, match, position_effect
from services.gateway.sizing import prepare
from shared.binance.rules import SymbolRules
from shared.fills import Costs, market_fill
from shared.messages import OrderIntent, OrderType, Side, TimeInForce

RULES = SymbolRules(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    max_qty=Decimal("100"),
    min_notional=Decimal("10"),
)
BASE = PaperCosts(
    taker_fee=Decimal("0.001"), maker_fee=Decimal("0.0005"), slippage=Decimal(0), fee_asset="base"
)


def intent(**kw: object) -> OrderIntent:
    fields: dict[str, object] = {
        "intent_id": "b:1:buy",
        "bot_id": "b",
        "epoch": 1,
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "quote_quantity": Decimal("100"),
    }
    fields.update(kw)
    return OrderIntent(**fields)  # type: ignore[arg-type]


def test_a_quote_sized_market_buy_pays_its_commission_in_base_as_the_backtester() -> None:
    order = prepare(intent(), RULES, Decimal("1000"))
    fill = match(order, Decimal("1000"), BASE, RULES.step_size)
    assert fill is not None
    assert (fill.qty, fill.quote, fill.commission, fill.commission_asset) == (
        Decimal("0.100"),
        Decimal("100.00000000"),
        Decimal("0.00010000"),
        "BTC",
    )
    shared = market_fill(
        Side.BUY,
        Decimal("1000"),
        Costs(taker_fee=Decimal("0.001"), slippage=Decimal(0), fee_asset="base"),
        RULES.step_size,
        "BTC",
        "USDT",
        quote_quantity=Decimal("100"),
    )
    assert shared == fill
    assert position_effect(order, fill) == (Decimal("0.09990000"), Decimal("100.00000000"))
    asset, needed, deltas = balance_effect(order, fill)
    assert (asset, needed) == ("USDT", Decimal("100.00000000"))
    assert deltas == {"USDT": Decimal("-100.00000000"), "BTC": Decimal("0.09990000")}


def test_a_resting_limit_buy_pays_the_maker_fee_in_base() -> None:
    order = prepare(
        intent(
            order_type=OrderType.LIMIT,
            quote_quantity=None,
            quantity=Decimal("0.02"),
            price=Decimal("990"),
            time_in_force=TimeInForce.GTC,
        ),
        RULES,
        None,
    )
    fill = match(order, Decimal("985"), BASE, RULES.step_size, resting=True)
    assert fill is not None
    assert (fill.price, fill.commission, fill.commission_asset) == (
        Decimal("990.00000000"),
        Decimal("0.00001000"),
        "BTC",
    )


def test_a_sell_pays_in_quote_whatever_the_fee_asset() -> None:
    order = prepare(
        intent(side=Side.SELL, quote_quantity=None, quantity=Decimal("0.05")),
        RULES,
        Decimal("1000"),
    )
    fill = match(order, Decimal("1000"), BASE, RULES.step_size)
    assert fill is not None
    assert (fill.commission, fill.commission_asset) == (Decimal("0.05000000"), "USDT")
    assert position_effect(order, fill) == (Decimal("0.05"), Decimal("49.95000000"))
    assert balance_effect(order, fill)[2] == {
        "BTC": Decimal("-0.05"),
        "USDT": Decimal("49.95000000"),
    }
