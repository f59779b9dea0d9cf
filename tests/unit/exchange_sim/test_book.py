"""Accounts, orders and matching: what the matching engine decides."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.exchange_sim.apierror import ApiError
from services.exchange_sim.book import Book, NewOrder
from services.exchange_sim.exchange import rules_for
from services.exchange_sim.market import spec_for

D = Decimal
T0 = 1_795_629_000_000


@pytest.fixture
def book() -> Book:
    b = Book({"BTCUSDT": rules_for(spec_for("BTCUSDT"))})
    b.add_account("a", {"USDT": D(10000), "BTC": D(1)})
    return b


def _bal(book: Book, asset: str) -> tuple[Decimal, Decimal]:
    free, locked = book.accounts["a"].balances[asset]
    return free, locked


def test_market_buy_fills_at_the_price_and_pays_commission_in_base(book: Book) -> None:
    order = book.place("a", NewOrder("BTCUSDT", "BUY", "MARKET", quantity=D("0.1")), D(50000), T0)
    assert order.status == "FILLED"
    assert order.executed_qty == D("0.1")
    assert order.cum_quote == D(5000)
    (fill,) = order.fills
    assert (fill.price, fill.commission, fill.commission_asset) == (D(50000), D("0.0001"), "BTC")
    assert _bal(book, "USDT") == (D(5000), D(0))
    assert _bal(book, "BTC") == (D("1.0999"), D(0))


def test_quote_order_qty_buys_a_quantity_rounded_down_to_the_step(book: Book) -> None:
    req = NewOrder("BTCUSDT", "BUY", "MARKET", quote_order_qty=D(100))
    order = book.place("a", req, D(30000), T0)
    assert order.executed_qty == D("0.00333")
    assert order.cum_quote == D("99.9")


def test_resting_limit_fills_at_its_price_as_maker_when_the_path_crosses(book: Book) -> None:
    req = NewOrder("BTCUSDT", "BUY", "LIMIT", "GTC", quantity=D("0.1"), price=D(49000))
    order = book.place("a", req, D(50000), T0)
    assert order.status == "NEW"
    assert _bal(book, "USDT") == (D(5100), D(4900))
    book.on_prices("BTCUSDT", T0 // 1000 + 1, [D(49500), D(48900), D(48000)])
    assert order.status == "FILLED"
    assert order.fills[0].price == D(49000)
    assert order.fills[0].is_maker
    assert order.update_time == T0 + 2000
    assert _bal(book, "USDT") == (D(5100), D(0))


def test_marketable_limit_takes_at_the_better_current_price_and_refunds(book: Book) -> None:
    req = NewOrder("BTCUSDT", "BUY", "LIMIT", "GTC", quantity=D("0.1"), price=D(51000))
    order = book.place("a", req, D(50000), T0)
    assert order.status == "FILLED"
    assert order.fills[0].price == D(50000)
    assert not order.fills[0].is_maker
    assert _bal(book, "USDT") == (D(5000), D(0))


def test_insufficient_balance_is_rejected_with_2010(book: Book) -> None:
    with pytest.raises(ApiError) as err:
        book.place("a", NewOrder("BTCUSDT", "SELL", "MARKET", quantity=D(2)), D(50000), T0)
    assert (err.value.code, err.value.msg) == (
        -2010,
        "Account has insufficient balance for requested action.",
    )


def test_a_client_id_is_refused_while_its_order_is_open_and_free_once_done(book: Book) -> None:
    limit = NewOrder(
        "BTCUSDT", "BUY", "LIMIT", "GTC", D("0.01"), price=D(1000), client_order_id="x1"
    )
    book.place("a", limit, D(50000), T0)
    with pytest.raises(ApiError) as err:
        book.place("a", limit, D(50000), T0)
    assert (err.value.code, err.value.msg) == (-2010, "Duplicate order sent.")
    book.cancel("a", "BTCUSDT", None, "x1", T0)
    again = book.place("a", limit, D(50000), T0)
    assert book.find("a", "BTCUSDT", None, "x1") is again
    market = NewOrder("BTCUSDT", "BUY", "MARKET", quantity=D("0.01"), client_order_id="m1")
    book.place("a", market, D(50000), T0)
    book.place("a", market, D(50000), T0)  # filled orders free their id at once
    assert sum(o.client_order_id == "m1" for o in book.history) == 2


def test_limit_maker_that_would_take_is_rejected(book: Book) -> None:
    req = NewOrder("BTCUSDT", "BUY", "LIMIT_MAKER", quantity=D("0.01"), price=D(51000))
    with pytest.raises(ApiError) as err:
        book.place("a", req, D(50000), T0)
    assert (err.value.code, err.value.msg) == (-2010, "Order would immediately match and take.")


def test_ioc_that_cannot_fill_expires_and_unlocks(book: Book) -> None:
    req = NewOrder("BTCUSDT", "BUY", "LIMIT", "IOC", quantity=D("0.01"), price=D(40000))
    order = book.place("a", req, D(50000), T0)
    assert order.status == "EXPIRED"
    assert _bal(book, "USDT") == (D(10000), D(0))


def test_stop_loss_limit_wakes_when_the_price_falls_to_its_stop(book: Book) -> None:
    req = NewOrder(
        "BTCUSDT", "SELL", "STOP_LOSS_LIMIT", "GTC", D("0.5"), price=D(47000), stop_price=D(48000)
    )
    order = book.place("a", req, D(50000), T0)
    assert not order.is_working
    book.on_prices("BTCUSDT", T0 // 1000 + 1, [D(49000), D(47900)])
    assert order.is_working and order.status == "FILLED"
    assert order.fills[0].price == D(47900)
    with pytest.raises(ApiError) as err:
        book.place("a", req, D(47000), T0)
    assert err.value.msg == "Order would trigger immediately."


def test_cancel_of_a_finished_or_unknown_order_is_2011(book: Book) -> None:
    filled = book.place("a", NewOrder("BTCUSDT", "BUY", "MARKET", quantity=D("0.01")), D(1), T0)
    for order_id in (filled.order_id, 999):
        with pytest.raises(ApiError) as err:
            book.cancel("a", "BTCUSDT", order_id, None, T0)
        assert (err.value.code, err.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(ApiError) as err:
        book.find("a", "BTCUSDT", 999, None)
    assert err.value.code == -2013


def test_max_num_orders_is_a_2010_filter_failure(book: Book) -> None:
    for i in range(200):
        req = NewOrder("BTCUSDT", "BUY", "LIMIT", "GTC", D("0.0001"), price=D(100 + i))
        book.place("a", req, D(50000), T0)
    with pytest.raises(ApiError) as err:
        book.place("a", req, D(50000), T0)
    assert (err.value.code, err.value.msg) == (-2010, "Filter failure: MAX_NUM_ORDERS")


def test_every_change_produces_user_events(book: Book) -> None:
    book.drain_events()
    book.place("a", NewOrder("BTCUSDT", "BUY", "MARKET", quantity=D("0.01")), D(50000), T0)
    kinds = [(e.kind, e.exec_type) for e in book.drain_events()]
    assert ("order", "NEW") in kinds and ("order", "TRADE") in kinds
    assert ("balances", "") in kinds
