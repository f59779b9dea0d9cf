"""The gateway's pure cores: sizing and filters, paper matching, the order state rules,
static rails, the circuit breaker and the settings' start-up refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.gateway.breaker import BreakerState, CircuitBreaker
from services.gateway.orders import (
    NotFoundVerdict,
    after_not_found,
    report_from_venue,
    venue_status,
)
from services.gateway.paper import PaperCosts, balance_effect, match
from services.gateway.rails import Rails, rail_name, static_rail_violation
from services.gateway.settings import GatewaySettings, parse_balances
from services.gateway.sizing import IntentRejected, prepare
from shared.binance.rules import SymbolRules
from shared.binance.schemas import OrderFill, OrderFull
from shared.messages import ExecutionStatus, OrderIntent, OrderType, Side, TimeInForce
from shared.settings import SettingsError, load_settings

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
COSTS = PaperCosts(
    taker_fee=Decimal("0.001"), maker_fee=Decimal("0.0005"), slippage=Decimal("0.01")
)


def intent(**kw: object) -> OrderIntent:
    base: dict[str, object] = {
        "intent_id": "b:1:buy",
        "bot_id": "b",
        "epoch": 1,
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "quantity": Decimal("0.0129"),
    }
    base.update(kw)
    return OrderIntent(**base)  # type: ignore[arg-type]


def test_market_quantity_rounds_down_to_the_step_and_notional_uses_the_last_price() -> None:
    order = prepare(intent(), RULES, Decimal("1000"))
    assert order.quantity == Decimal("0.012")
    assert order.notional == Decimal("12.000")


def test_limit_prices_round_toward_the_safe_side() -> None:
    buy = prepare(intent(order_type=OrderType.LIMIT, price=Decimal("1000.019")), RULES, None)
    sell = prepare(
        intent(side=Side.SELL, order_type=OrderType.LIMIT, price=Decimal("1000.011")), RULES, None
    )
    assert buy.price == Decimal("1000.01") and sell.price == Decimal("1000.02")


@pytest.mark.parametrize(
    ("kw", "price", "needle"),
    [
        ({"quantity": Decimal("0.005")}, Decimal("1000"), "NOTIONAL"),
        ({"quantity": Decimal("0.0004")}, Decimal("1000"), "LOT_SIZE"),
        ({"quantity": Decimal("500")}, Decimal("1"), "LOT_SIZE"),
        ({"symbol": "NOPE"}, Decimal("1"), "unknown symbol"),
        ({}, None, "no reference price"),
        ({"quote_quantity": Decimal("5")}, Decimal("1000"), "exactly one"),
    ],
)
def test_an_intent_the_exchange_would_refuse_is_rejected_with_the_reason_named(
    kw: dict[str, object], price: Decimal | None, needle: str
) -> None:
    with pytest.raises(IntentRejected, match=needle):
        prepare(intent(**kw), RULES if kw.get("symbol") != "NOPE" else None, price)


def test_wire_params_are_formatted_at_the_symbol_precision_with_the_client_order_id() -> None:
    order = prepare(intent(order_type=OrderType.LIMIT, price=Decimal("1000")), RULES, None)
    params = dict(order.wire_params(RULES, "bf-x"))
    assert params["quantity"] == "0.01200000" and params["price"] == "1000.00000000"
    assert params["timeInForce"] == "GTC" and params["newClientOrderId"] == "bf-x"


def test_paper_market_buy_pays_slippage_and_taker_fee_in_quote() -> None:
    order = prepare(intent(quantity=Decimal("0.01")), RULES, Decimal("1000"))
    fill = match(order, Decimal("1000"), COSTS, RULES.step_size)
    assert fill is not None
    assert (fill.price, fill.qty, fill.quote, fill.commission) == (
        Decimal("1010.00000000"),
        Decimal("0.010"),
        Decimal("10.10000000"),
        Decimal("0.01010000"),
    )
    asset, needed, deltas = balance_effect(order, fill)
    assert asset == "USDT" and needed == Decimal("10.11010000")
    assert deltas == {"USDT": Decimal("-10.11010000"), "BTC": Decimal("0.010")}


def test_paper_quote_sized_buy_spends_at_most_its_quote_amount_including_fee() -> None:
    order = prepare(intent(quantity=None, quote_quantity=Decimal("100")), RULES, Decimal("1000"))
    fill = match(order, Decimal("1000"), COSTS, RULES.step_size)
    assert fill is not None and fill.quote + fill.commission <= Decimal("100")


def test_paper_limit_fills_only_when_the_price_crosses_and_then_at_its_limit() -> None:
    order = prepare(
        intent(order_type=OrderType.LIMIT, price=Decimal("990"), time_in_force=TimeInForce.GTC),
        RULES,
        None,
    )
    assert match(order, Decimal("995"), COSTS, RULES.step_size) is None
    fill = match(order, Decimal("980"), COSTS, RULES.step_size, resting=True)
    assert fill is not None and fill.price == Decimal("990.00000000")


def test_no_such_order_proves_nothing_until_the_window_has_passed() -> None:
    assert after_not_found(10_000, 9_000, 5_000) is NotFoundVerdict.WAIT
    assert after_not_found(14_500, 9_000, 5_000) is NotFoundVerdict.WAIT  # within the margin
    assert after_not_found(15_001, 9_000, 5_000) is NotFoundVerdict.RESEND
    # a record still SENDING: its handler may stamp the request later than sent_at
    assert after_not_found(15_001, 9_000, 5_000, in_flight_ms=9_000) is NotFoundVerdict.WAIT
    assert after_not_found(24_001, 9_000, 5_000, in_flight_ms=9_000) is NotFoundVerdict.RESEND


def test_venue_statuses_map_to_terminal_or_resting_reports() -> None:
    assert venue_status("FILLED") == (ExecutionStatus.FILLED, True)
    assert venue_status("EXPIRED_IN_MATCH") == (ExecutionStatus.EXPIRED, True)
    assert venue_status("NEW") == (ExecutionStatus.NEW, False)
    assert venue_status("PARTIALLY_FILLED") == (ExecutionStatus.PARTIALLY_FILLED, False)


def test_report_from_a_full_response_sums_fills_and_averages_the_price() -> None:
    full = OrderFull(
        symbol="BTCUSDT", orderId=7, clientOrderId="bf-x", transactTime=1, price="0", origQty="0.002",
        executedQty="0.002", cummulativeQuoteQty="2.001", status="FILLED", timeInForce="GTC",
        type="MARKET", side="BUY",
        fills=[
            OrderFill(price="1000", qty="0.001", commission="0.000001", commissionAsset="BTC", tradeId=1),
            OrderFill(price="1001", qty="0.001", commission="0.000001", commissionAsset="BTC", tradeId=2),
        ],
    )  # fmt: skip
    report = report_from_venue(intent(), "bf-x", full, mode="live", now_ms=5)
    assert report.final and report.status is ExecutionStatus.FILLED
    assert report.avg_price == Decimal("1000.5") and report.commission == Decimal("0.000002")
    assert report.commission_asset == "BTC" and report.exchange_order_id == 7


def test_a_canceled_order_with_fills_ends_as_partially_filled() -> None:
    full = OrderFull(
        symbol="BTCUSDT", orderId=8, clientOrderId="bf-y", transactTime=1, price="1000", origQty="0.002",
        executedQty="0.001", cummulativeQuoteQty="1000", status="CANCELED", timeInForce="GTC",
        type="LIMIT", side="BUY", fills=[],
    )  # fmt: skip
    report = report_from_venue(intent(), "bf-y", full, mode="live", now_ms=5)
    assert report.final and report.status is ExecutionStatus.PARTIALLY_FILLED


def test_static_rails_name_the_rail_broken() -> None:
    rails = Rails(allowed_symbols=frozenset({"ETHUSDT"}), max_order_notional=Decimal("100"))
    assert rail_name(static_rail_violation(rails, "BTCUSDT", Decimal(1))) == "allowed_symbols"
    assert rail_name(static_rail_violation(rails, "ETHUSDT", Decimal(101))) == "max_order_notional"
    assert static_rail_violation(rails, "ETHUSDT", Decimal(100)) == ""
    assert static_rail_violation(Rails(), "ANY", Decimal(10**9)) == ""


def test_breaker_opens_after_repeated_failures_and_one_probe_closes_it() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10)
    assert not breaker.failure(0) and not breaker.failure(1)
    assert breaker.failure(2)  # third failure opens it
    assert breaker.state(5) is BreakerState.OPEN and not breaker.allow(5)
    assert breaker.allow(12) and not breaker.allow(12)  # one probe in half-open
    assert breaker.failure(12)  # failed probe reopens
    assert breaker.allow(23)
    assert breaker.success() and breaker.state(23) is BreakerState.CLOSED


def test_live_without_keys_is_a_start_up_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "BOTFLEET_BINANCE_API_KEY",
        "BOTFLEET_BINANCE_API_SECRET",
        "BOTFLEET_BINANCE_PRIVATE_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")
    with pytest.raises(SettingsError, match="BOTFLEET_BINANCE_API_KEY"):
        load_settings(GatewaySettings, trading_mode="live")
    with pytest.raises(SettingsError, match="BOTFLEET_BINANCE_API_SECRET"):
        load_settings(GatewaySettings, trading_mode="live", binance_api_key="k" * 10)


def test_production_needs_the_explicit_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    monkeypatch.delenv("BOTFLEET_CONFIRM_PRODUCTION", raising=False)
    keys = {"binance_api_key": "k" * 10, "binance_api_secret": "s" * 10}
    with pytest.raises(SettingsError, match="BOTFLEET_CONFIRM_PRODUCTION"):
        load_settings(GatewaySettings, trading_mode="live", binance_env="production", **keys)
    ok = load_settings(
        GatewaySettings,
        trading_mode="live",
        binance_env="production",
        confirm_production="yes",
        **keys,
    )
    assert ok.trading_mode.value == "live"
    assert "s" * 10 not in repr(ok)


def test_paper_balances_parse_and_refuse_nonsense() -> None:
    assert parse_balances("usdt=10, BTC=0.5") == {"USDT": Decimal(10), "BTC": Decimal("0.5")}
    with pytest.raises(ValueError):
        parse_balances("USDT=-1")
    with pytest.raises(ValueError):
        parse_balances("USDT")
