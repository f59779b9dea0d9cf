"""The shared MARKET fill model: equal to the paper gateway's for fees in quote, Binance's
base-asset commission for fees in base, and the filters refuse what the venue refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.backtest.engine import Backtest, Order
from services.backtest.rules import default_rules
from services.gateway.paper import PaperCosts, match
from services.gateway.sizing import prepare
from shared.fills import Costs, OrderRefused, market_fill, prepare_market
from shared.klines import Kline
from shared.messages import OrderIntent, OrderType, Side
from shared.strategies.config import BotConfig

RULES = default_rules("BTCUSDT")


@given(
    price=st.decimals(min_value="100", max_value="100000", places=2),
    quote=st.decimals(min_value="10", max_value="5000", places=2),
    fee=st.decimals(min_value="0", max_value="0.01", places=4),
    slip=st.decimals(min_value="0", max_value="0.01", places=4),
)
def test_a_quote_sized_buy_fills_as_the_paper_gateway_fills_it(
    price: Decimal, quote: Decimal, fee: Decimal, slip: Decimal
) -> None:
    intent = OrderIntent(
        intent_id="b:1:buy",
        bot_id="b",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quote_quantity=quote,
    )
    paper = match(
        prepare(intent, RULES, price),
        price,
        PaperCosts(taker_fee=fee, maker_fee=fee, slippage=slip),
        RULES.step_size,
    )
    _, q = prepare_market(RULES, Side.BUY, price, quote_quantity=quote)
    ours = market_fill(
        Side.BUY,
        price,
        Costs(taker_fee=fee, slippage=slip),
        RULES.step_size,
        "BTC",
        "USDT",
        quote_quantity=q,
    )
    if paper is None:
        assert ours is None
    else:
        assert ours is not None
        assert (ours.price, ours.qty, ours.quote, ours.commission, ours.commission_asset) == (
            paper.price,
            paper.qty,
            paper.quote,
            paper.commission,
            paper.commission_asset,
        )


def test_a_commission_in_base_leaves_dust_the_book_writes_off() -> None:
    fill = market_fill(
        Side.BUY,
        Decimal("60000"),
        Costs(taker_fee=Decimal("0.001"), slippage=Decimal(0), fee_asset="base"),
        RULES.step_size,
        "BTC",
        "USDT",
        quote_quantity=Decimal("600"),
    )
    assert fill is not None
    assert (fill.qty, fill.commission, fill.commission_asset) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        "BTC",
    )
    config = BotConfig.model_validate(
        {
            "name": "dust",
            "symbol": "BTCUSDT",
            "interval": "1m",
            "strategy": "rsi",
            "quote_allocation": "1000",
            "stop_loss_pct": "1",
            "sizing": {"mode": "fixed_quote", "quote_amount": "600"},
        }
    )
    costs = Costs(taker_fee=Decimal("0.0015"), slippage=Decimal(0), fee_asset="base")
    bt = Backtest(config, RULES, costs)
    bt._fill(Order("1", Side.BUY, "test", quote=Decimal("600")), Decimal("60000"), 0)
    assert bt.book.qty == Decimal("0.009985")  # 0.01 bought, 0.000015 BTC commission
    k = Kline(2, 60_000, 119_999, 60000.0, 60000.0, 50000.0, 50000.0, 1.0,
              ("60000", "60000", "50000", "50000"))  # fmt: skip
    bt._path_exits(k)
    (trip,) = bt.trips
    assert trip.exit_reason.startswith("STOP_LOSS")
    assert trip.dust == Decimal("0.000005")  # sold 0.00998 (step 0.00001)
    assert bt.book.qty == 0
    assert trip.pnl == trip.proceeds - trip.cost - trip.fees


def test_an_order_below_the_minimum_notional_is_refused() -> None:
    with pytest.raises(OrderRefused, match="NOTIONAL"):
        prepare_market(RULES, Side.BUY, Decimal("60000"), quote_quantity=Decimal("4.99"))
    with pytest.raises(OrderRefused, match="LOT_SIZE"):
        prepare_market(RULES, Side.SELL, Decimal("60000"), quantity=Decimal("0.000009"))
