"""Trading rules: rounding stays on the grid and below the input, validate_order agrees
with a brute-force check, and rules survive exchangeInfo and the exchange:symbols JSON."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.binance.parsing import encode_payload, parse_exchange_info
from shared.binance.rules import (
    FilterFailure,
    InvalidOrderValue,
    SymbolRules,
    exchange_info_symbol,
    format_decimal,
    format_price,
    format_quantity,
    round_price_to_tick,
    round_to_step,
    rules_from_json,
    rules_to_json,
    symbol_info_from_rules,
    validate_order,
)
from shared.binance.schemas import ExchangeInfo
from shared.messages import OrderType, Side
from tests.unit.binance.conftest import fixture_bytes

D = Decimal

# Grids as Binance uses them (powers of ten) and some odd ones to keep the maths honest.
steps = st.one_of(
    st.integers(min_value=-8, max_value=2).map(lambda e: D(1).scaleb(e)),
    st.integers(min_value=1, max_value=10_000).map(lambda n: D(n).scaleb(-6)),
)
amounts = st.decimals(
    min_value=D(0), max_value=D(10) ** 9, places=10, allow_nan=False, allow_infinity=False
)
positive = st.decimals(
    min_value=D("0.00000001"), max_value=D(10) ** 7, places=8, allow_nan=False, allow_infinity=False
)


def on_grid(value: Decimal, step: Decimal) -> bool:
    return step == 0 or (Fraction(value) / Fraction(step)).denominator == 1


# --- rounding ----------------------------------------------------------------------------------


@given(amounts, steps)
def test_round_to_step_never_exceeds_the_input_and_lands_on_the_grid(
    qty: Decimal, step: Decimal
) -> None:
    rounded = round_to_step(qty, step)
    assert rounded <= qty
    assert qty - rounded < step
    assert on_grid(rounded, step)
    assert round_to_step(rounded, step) == rounded  # idempotent


@given(amounts)
def test_step_zero_means_no_rounding(qty: Decimal) -> None:
    assert round_to_step(qty, D(0)) == qty
    assert round_price_to_tick(qty, D(0)) == qty


def test_round_to_step_keeps_the_steps_exponent() -> None:
    assert str(round_to_step(D("1.23456"), D("0.00100000"))) == "1.23400000"
    assert round_to_step(D("0.0009"), D("0.001")) == 0


@given(amounts, steps)
def test_round_price_to_tick_directions(price: Decimal, tick: Decimal) -> None:
    down = round_price_to_tick(price, tick, "down")
    up = round_price_to_tick(price, tick, "up")
    nearest = round_price_to_tick(price, tick, "nearest")
    assert down <= price <= up
    assert up - down in (0, tick)
    assert nearest in (down, up)
    assert abs(nearest - price) <= tick / 2
    for value in (down, up, nearest):
        assert on_grid(value, tick)


def test_round_price_to_tick_nearest_rounds_half_up() -> None:
    assert round_price_to_tick(D("1.005"), D("0.01"), "nearest") == D("1.01")
    assert round_price_to_tick(D("1.0049"), D("0.01"), "nearest") == D("1.00")
    with pytest.raises(ValueError):
        round_price_to_tick(D(1), D("0.01"), "sideways")  # type: ignore[arg-type]


# --- validate_order against a brute-force reference ------------------------------------------


def brute_force(
    rules: SymbolRules,
    order_type: str,
    qty: Decimal,
    price: Decimal | None,
    reference: Decimal,
) -> str | None:
    """The filter an order breaks, spelled out from filters.md with Fractions (§5)."""
    q = Fraction(qty)
    if order_type == "LIMIT":
        assert price is not None
        p = Fraction(price)
        if (rules.min_price and p < rules.min_price) or (rules.max_price and p > rules.max_price):
            return "PRICE_FILTER"
        if rules.tick_size and (p / Fraction(rules.tick_size)).denominator != 1:
            return "PRICE_FILTER"
    lots = [("LOT_SIZE", rules.min_qty, rules.max_qty, rules.step_size)]
    if order_type == "MARKET":
        lots.append(
            ("MARKET_LOT_SIZE", rules.market_min_qty, rules.market_max_qty, rules.market_step_size)
        )
    for name, lo, hi, step in lots:
        if (lo and q < lo) or (hi and q > hi) or (step and (q / Fraction(step)).denominator != 1):
            return name
    notional = q * Fraction(price if order_type == "LIMIT" else reference)  # type: ignore[arg-type]
    use_min = order_type == "LIMIT" or rules.apply_min_to_market
    use_max = order_type == "LIMIT" or rules.apply_max_to_market
    if use_min and rules.min_notional and notional < rules.min_notional:
        return rules.notional_filter
    if use_max and rules.max_notional and notional > rules.max_notional:
        return rules.notional_filter
    return None


@st.composite
def symbol_rules(draw: st.DrawFn) -> SymbolRules:
    tick, step, market_step = draw(steps), draw(steps), draw(st.one_of(st.just(D(0)), steps))
    notional_filter = draw(st.sampled_from(["NOTIONAL", "MIN_NOTIONAL", ""]))
    maybe = st.one_of(st.just(D(0)), positive)
    min_price, max_price = draw(maybe), draw(maybe)
    min_qty, max_qty = draw(maybe), draw(maybe)
    return SymbolRules(
        symbol="TESTUSDT",
        base_asset="TEST",
        quote_asset="USDT",
        tick_size=tick,
        min_price=min_price,
        max_price=max_price,
        step_size=step,
        min_qty=min_qty,
        max_qty=max_qty,
        market_step_size=market_step,
        market_min_qty=draw(maybe),
        market_max_qty=draw(maybe),
        notional_filter=notional_filter,
        min_notional=draw(maybe) if notional_filter else D(0),
        max_notional=draw(maybe) if notional_filter == "NOTIONAL" else D(0),
        apply_min_to_market=draw(st.booleans()),
        apply_max_to_market=draw(st.booleans()) if notional_filter == "NOTIONAL" else False,
        avg_price_mins=draw(st.integers(min_value=0, max_value=60)),
        max_num_orders=draw(st.integers(min_value=0, max_value=500)),
        max_num_algo_orders=draw(st.integers(min_value=0, max_value=10)),
        order_types=tuple(draw(st.lists(st.sampled_from(["LIMIT", "MARKET", "LIMIT_MAKER"])))),
        allowed_stp_modes=tuple(draw(st.lists(st.sampled_from(["NONE", "EXPIRE_MAKER"])))),
        base_precision=draw(st.integers(min_value=0, max_value=8)),
        quote_precision=draw(st.integers(min_value=0, max_value=8)),
    )


@given(
    symbol_rules(),
    st.sampled_from(["LIMIT", "MARKET"]),
    positive,
    positive,
    positive,
    st.integers(min_value=0, max_value=10**6),
    st.booleans(),
)
def test_validate_order_agrees_with_brute_force(
    rules: SymbolRules,
    order_type: str,
    qty: Decimal,
    price: Decimal,
    reference: Decimal,
    multiple: int,
    snap: bool,
) -> None:
    if snap:  # land on the grids often enough to reach the later filters
        qty = max(rules.step_size, D("0.00000001")) * (multiple or 1)
        price = round_price_to_tick(price, rules.tick_size, "up")
        assume(price > 0)
    expected = brute_force(rules, order_type, qty, price, reference)
    try:
        validate_order(rules, Side.BUY, order_type, qty, price, reference)
    except FilterFailure as failure:
        assert failure.filter_name == expected
        assert failure.msg == f"Filter failure: {expected}"
    else:
        assert expected is None


BTCUSDT = parse_exchange_info(fixture_bytes("rest_exchangeinfo_btcusdt.json"))["BTCUSDT"]


@pytest.mark.parametrize(
    ("order_type", "qty", "price", "ref", "quote", "expected"),
    [
        (OrderType.LIMIT, "0.001", "60000.00", None, None, None),
        (OrderType.LIMIT, "0.001", "60000.005", None, None, "PRICE_FILTER"),
        (OrderType.LIMIT, "0.001", "0.001", None, None, "PRICE_FILTER"),
        (OrderType.LIMIT, "0.000015", "60000", None, None, "LOT_SIZE"),
        (OrderType.LIMIT, "9001", "1", None, None, "LOT_SIZE"),
        (OrderType.LIMIT, "0.00001", "60000", None, None, "NOTIONAL"),  # 0.6 USDT < 5
        (OrderType.MARKET, "150", None, "60000", None, "MARKET_LOT_SIZE"),
        (OrderType.MARKET, "0.00005", None, "60000", None, "NOTIONAL"),  # 3 USDT, applyMinToMarket
        (OrderType.MARKET, "100", None, "600000", None, None),  # above maxNotional, but not applied to MARKET
        (OrderType.MARKET, None, None, None, "4.99", "NOTIONAL"),
        (OrderType.MARKET, None, None, None, "5", None),
    ],
)  # fmt: skip
def test_btcusdt_examples(
    order_type: OrderType,
    qty: str | None,
    price: str | None,
    ref: str | None,
    quote: str | None,
    expected: str | None,
) -> None:
    def dec(value: str | None) -> Decimal | None:
        return None if value is None else D(value)

    try:
        validate_order(
            BTCUSDT, Side.BUY, order_type, dec(qty), dec(price), dec(ref), quote_quantity=dec(quote)
        )
    except FilterFailure as failure:
        assert failure.filter_name == expected
        assert failure.code == -1013
    else:
        assert expected is None


def test_legacy_min_notional_is_reported_by_its_own_name() -> None:
    rules = SymbolRules(
        symbol="X", base_asset="A", quote_asset="B", notional_filter="MIN_NOTIONAL",
        min_notional=D(10), apply_min_to_market=False,
    )  # fmt: skip
    with pytest.raises(FilterFailure, match="MIN_NOTIONAL"):
        validate_order(rules, Side.SELL, OrderType.LIMIT, D(1), D(5))
    validate_order(rules, Side.SELL, OrderType.MARKET, D(1), None, D(5))  # not applied to MARKET


def test_invalid_values_and_missing_context() -> None:
    with pytest.raises(InvalidOrderValue, match="Invalid quantity"):
        validate_order(BTCUSDT, Side.BUY, OrderType.LIMIT, D(0), D(1))
    with pytest.raises(InvalidOrderValue, match="Invalid price"):
        validate_order(BTCUSDT, Side.BUY, OrderType.LIMIT, D(1), D(0))
    with pytest.raises(ValueError, match="reference_price"):
        validate_order(BTCUSDT, Side.BUY, OrderType.MARKET, D(1), None, None)
    with pytest.raises(ValueError, match="price is required"):
        validate_order(BTCUSDT, Side.BUY, OrderType.LIMIT, D(1), None)


# --- exchangeInfo and exchange:symbols round trips -------------------------------------------


@given(symbol_rules())
def test_rules_survive_the_exchange_info_json(rules: SymbolRules) -> None:
    body = encode_payload(ExchangeInfo(symbols=[symbol_info_from_rules(rules)]))
    assert parse_exchange_info(body) == {rules.symbol: rules}
    assert (
        msgspec.json.decode(msgspec.json.encode(exchange_info_symbol(rules)))["symbol"]
        == "TESTUSDT"
    )


@given(symbol_rules())
def test_rules_survive_the_exchange_symbols_hash_json(rules: SymbolRules) -> None:
    assert rules_from_json(rules_to_json(rules)) == rules


def test_inconsistent_rules_in_redis_fail_to_decode() -> None:
    bad = (
        b'{"symbol":"X","base_asset":"A","quote_asset":"B","notional_filter":"","min_notional":"5"}'
    )
    with pytest.raises(msgspec.ValidationError):
        rules_from_json(bad)


def test_btcusdt_fixture_rules() -> None:
    r = BTCUSDT
    assert (r.tick_size, r.min_price, r.max_price) == (D("0.01"), D("0.01"), D(1000000))
    assert (r.step_size, r.min_qty, r.max_qty) == (D("0.00001"), D("0.00001"), D(9000))
    assert (r.market_step_size, r.market_min_qty, r.market_max_qty) == (0, 0, D(100))
    assert (r.notional_filter, r.min_notional, r.max_notional) == ("NOTIONAL", D(5), D(9000000))
    assert (r.apply_min_to_market, r.apply_max_to_market, r.avg_price_mins) == (True, False, 5)
    assert (r.max_num_orders, r.max_num_algo_orders) == (200, 5)
    assert r.is_trading and r.default_stp_mode == "EXPIRE_MAKER"


def test_serialised_filters_look_like_binance() -> None:
    entry = exchange_info_symbol(BTCUSDT)
    price_filter = entry["filters"][0]  # type: ignore[index]
    assert price_filter == {
        "filterType": "PRICE_FILTER",
        "minPrice": "0.01000000",
        "maxPrice": "1000000.00000000",
        "tickSize": "0.01000000",
    }


# --- wire formats ------------------------------------------------------------------------------


def test_format_decimal_is_exact_unless_told_to_round() -> None:
    assert format_decimal(D("0.001"), 8) == "0.00100000"
    assert format_decimal(D("1E+2"), 2) == "100.00"
    assert format_decimal(D("1.239"), 2, rounding=ROUND_DOWN) == "1.23"
    with pytest.raises(ValueError, match="more than 2 decimals"):
        format_decimal(D("1.239"), 2)
    assert format_quantity(BTCUSDT, D("0.00012")) == "0.00012000"
    assert format_price(BTCUSDT, D(60000)) == "60000.00000000"


@given(positive, st.integers(min_value=8, max_value=12))
def test_formatted_decimals_parse_back_to_the_same_value(value: Decimal, decimals: int) -> None:
    text = format_decimal(value, decimals)
    assert "E" not in text and D(text) == value
