"""BotBook: fills in, position, PnL, round trips and statistics out; idempotent and persistable."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.messages import ExecutionReport, ExecutionStatus, Side
from shared.strategies.accounting import BotBook
from shared.strategies.exits import ExitPlan, ExitReason
from tests.support.messages import report


def new_book(**kw: object) -> BotBook:
    return BotBook(allocation=D(1000), base_asset="BTC", quote_asset="USDT", symbol="BTCUSDT", **kw)  # type: ignore[arg-type]


def test_buys_average_the_entry_price_by_quantity() -> None:
    book = new_book()
    book.apply(report(Side.BUY, ("100", "1", "0", "USDT"), ("130", "2", "0", "USDT")))
    assert book.qty == D(3) and book.entry_price == D(120)


def test_a_base_asset_commission_on_a_buy_reduces_the_quantity_received() -> None:
    book = new_book()
    book.apply(report(Side.BUY, ("100", "1", "0.001", "BTC")))
    assert book.qty == D("0.999")
    assert book.cost_basis == D("99.9") and book.fees == D("0.1")
    assert book.cash == D(900)  # paid 100 for 0.999 BTC
    assert book.unrealized_pnl == D("-0.1")  # marked at the fill price


def test_round_trip_realises_proceeds_minus_costs_minus_fees() -> None:
    book = new_book()
    book.apply(report(Side.BUY, ("100", "2", "0.2", "USDT"), ts=1))
    r = book.apply(report(Side.SELL, ("110", "2", "0.22", "USDT"), ts=2, reason="TAKE_PROFIT"))
    assert r.applied and len(r.round_trips) == 1
    trip = r.round_trips[0]
    assert trip.pnl == D(220) - D(200) - D("0.42") == book.realized_pnl == r.realized_pnl
    assert (trip.opened_at, trip.closed_at, trip.exit_reason) == (1, 2, "TAKE_PROFIT")
    assert (trip.entry_price, trip.exit_price, trip.qty) == (D(100), D(110), D(2))
    assert (book.trades, book.wins, book.losses, book.win_rate) == (1, 1, 0, D(1))
    assert not book.is_open and book.equity == D(1000) + trip.pnl


def test_partial_sells_realise_a_share_of_basis_and_entry_fees() -> None:
    book = new_book()
    book.apply(report(Side.BUY, ("100", "4", "4", "USDT")))
    r = book.apply(report(Side.SELL, ("90", "1", "0", "USDT")))
    assert r.realized_pnl == D(90) - D(100) - D(1) and r.round_trips == ()
    assert book.qty == D(3) and book.entry_price == D(100)
    book.apply(report(Side.SELL, ("90", "3", "0", "USDT")))
    assert (book.trades, book.losses) == (1, 1)
    assert book.realized_pnl == D(360) - D(400) - D(4)


def test_a_sell_larger_than_the_position_is_clamped_and_flagged() -> None:
    book = new_book()
    book.apply(report(Side.BUY, ("100", "1", "0", "USDT")))
    r = book.apply(report(Side.SELL, ("100", "2", "0.2", "USDT")))
    assert r.clamped and book.qty == 0 and book.clamped_sells == 1
    assert r.realized_pnl == D("-0.1")  # proceeds and fee of the owned half only
    r = book.apply(report(Side.SELL, ("100", "1", "0", "USDT")))
    assert r.clamped and book.qty == 0 and r.realized_pnl == 0


def test_a_report_is_applied_once() -> None:
    book = new_book()
    buy = report(Side.BUY, ("100", "1", "0", "USDT"))
    assert book.apply(buy).applied
    again = book.apply(buy)
    assert not again.applied and again.note == "duplicate" and book.qty == D(1)
    restored = BotBook.from_hash(book.to_hash())
    assert not restored.apply(buy).applied


def test_non_final_reports_are_not_applied() -> None:
    book = new_book()
    assert book.apply(report(Side.BUY, ("100", "1", "0", "USDT"), final=False)).note == "not final"
    assert book.qty == 0


def test_a_report_without_fills_uses_its_totals() -> None:
    book = new_book()
    rep = ExecutionReport(
        intent_id="i", client_order_id="c", bot_id="bot", symbol="BTCUSDT", side=Side.BUY,
        status=ExecutionStatus.FILLED, final=True, executed_qty=D(2), cumulative_quote=D(201),
        avg_price=D("100.5"), commission=D("0.201"), commission_asset="USDT",
    )  # fmt: skip
    book.apply(rep)
    assert (book.qty, book.cost_basis, book.fees) == (D(2), D(201), D("0.201"))


def test_third_asset_commissions_are_priced_or_set_aside() -> None:
    book = new_book()
    book.apply(report(Side.BUY, ("100", "1", "0.01", "BNB")), asset_prices={"BNB": D(500)})
    assert book.fees == D(5)
    r = book.apply(report(Side.SELL, ("100", "1", "0.01", "BNB")))
    assert "BNB" in r.note and book.unpriced_fees == {"BNB": D("0.01")}
    assert book.realized_pnl == D(-5)


def test_dust_below_the_threshold_closes_the_trip() -> None:
    book = new_book(dust_qty=D("0.00001"))
    book.apply(report(Side.BUY, ("100", "1", "0.000999", "BTC")))
    r = book.apply(report(Side.SELL, ("100", "0.999", "0", "USDT")))
    assert book.qty == 0 and len(r.round_trips) == 1 and r.round_trips[0].dust == D("0.000001")
    assert book.realized_pnl == D("99.9") - D(100)


def test_equity_peak_and_drawdown_follow_marks() -> None:
    book = new_book()
    book.apply(report(Side.BUY, ("100", "5", "0", "USDT")))
    book.mark(D(120))
    assert book.equity == D(1100) and book.peak_equity == D(1100)
    book.mark(D(90))
    assert book.equity == D(950)
    assert book.max_drawdown == D(150)
    assert book.max_drawdown_pct == D(150) / D(1100) * 100
    book.mark(D(130))
    assert book.max_drawdown == D(150) and book.peak_equity == D(1150)


def test_exit_levels_follow_the_average_entry_and_trailing_high_rises() -> None:
    book = new_book(exit_plan=ExitPlan(D(2), D(5), D(3)))
    book.apply(report(Side.BUY, ("100", "1", "0", "USDT")))
    assert (book.stop_price, book.take_profit_price, book.trailing_high) == (D(98), D(105), D(100))
    book.apply(report(Side.BUY, ("90", "1", "0", "USDT")))
    assert book.stop_price == D(95) * D("0.98")
    assert book.take_profit_price == D("99.75")  # 95 * 1.05
    assert book.check_exit(D(99)).reason is None and book.trailing_high == D(100)
    assert book.check_exit(D(97)).reason is ExitReason.TRAILING_STOP  # 100 * 0.97
    assert book.check_exit(D("99.75")).reason is ExitReason.TAKE_PROFIT
    book.apply(report(Side.SELL, ("97", "2", "0", "USDT")))
    assert (book.stop_price, book.take_profit_price, book.trailing_high) == (None, None, None)


def test_hash_is_flat_text_and_restores_the_same_book() -> None:
    book = new_book(exit_plan=ExitPlan(D(2)))
    book.apply(report(Side.BUY, ("100", "1", "0.001", "BTC"), ts=5))
    book.mark(D("101.5"))
    data = book.to_hash()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
    raw = {k.encode(): v.encode() for k, v in data.items()}  # as redis-py returns it
    restored = BotBook.from_hash(raw, exit_plan=ExitPlan(D(2)))
    assert restored.to_hash() == data
    with pytest.raises(ValueError, match="invalid bot book hash"):
        BotBook.from_hash({"qty": "1"})


# --- properties --------------------------------------------------------------------

UNIT = D("0.00000001")
prices = st.integers(1, 10_000_000).map(lambda n: D(n) * D("0.01"))


@st.composite
def closed_trips(
    draw: st.DrawFn,
) -> list[tuple[list[tuple[D, D, D, str]], list[tuple[D, D, D, str]]]]:
    """Round trips whose sells add up exactly to the received quantity."""
    trips = []
    for _ in range(draw(st.integers(1, 4))):
        buys = []
        received_units = 0
        for _ in range(draw(st.integers(1, 3))):
            units = draw(st.integers(1000, 10**9))
            asset = draw(st.sampled_from(["USDT", "BTC", "BNB"]))
            fee_units = draw(st.integers(0, units // 100))
            fee = D(fee_units) * (UNIT if asset == "BTC" else D("0.0001"))
            received_units += units - (fee_units if asset == "BTC" else 0)
            buys.append((draw(prices), D(units) * UNIT, fee, asset))
        cuts = sorted(draw(st.lists(st.integers(1, received_units - 1), max_size=3, unique=True)))
        bounds = [0, *cuts, received_units]
        sells = [
            (draw(prices), D(b - a) * UNIT, D(draw(st.integers(0, 1000))) * D("0.0001"),
             draw(st.sampled_from(["USDT", "BNB"])))
            for a, b in itertools.pairwise(bounds)
        ]  # fmt: skip
        trips.append((buys, sells))
    return trips


@settings(max_examples=150, deadline=None)
@given(closed_trips())
def test_realized_pnl_of_closed_positions_is_proceeds_minus_costs_minus_fees(
    trips: list[tuple[list[tuple[D, D, D, str]], list[tuple[D, D, D, str]]]],
) -> None:
    bnb = D(300)
    book = new_book()
    expected = D(0)
    trip_pnls = D(0)
    for buys, sells in trips:
        for price, qty, fee, asset in buys:
            book.apply(
                report(Side.BUY, (str(price), str(qty), str(fee), asset)), asset_prices={"BNB": bnb}
            )
            expected -= price * qty  # a BTC commission is paid inside this outlay
            expected -= fee * bnb if asset == "BNB" else fee if asset == "USDT" else 0
        for price, qty, fee, asset in sells:
            r = book.apply(
                report(Side.SELL, (str(price), str(qty), str(fee), asset)),
                asset_prices={"BNB": bnb},
            )
            assert not r.clamped
            expected += price * qty - (fee * bnb if asset == "BNB" else fee)
            trip_pnls += sum((t.pnl for t in r.round_trips), D(0))
        assert book.qty == 0
    assert abs(book.realized_pnl - expected) <= D("1e-15")
    assert book.realized_pnl == trip_pnls
    assert book.trades == len(trips) == book.wins + book.losses
    assert book.equity == book.allocation + book.realized_pnl


ops = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        prices,
        st.integers(1, 10**9).map(lambda n: D(n) * UNIT),
        st.integers(0, 10**4).map(lambda n: D(n) * UNIT),
        st.sampled_from(["USDT", "BTC", "BNB"]),
        st.booleans(),  # re-deliver this report
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_position_never_negative_and_duplicates_change_nothing(
    operations: list[tuple[Side, D, D, D, str, bool]],
) -> None:
    book = new_book(dust_qty=D("0.0000001"))
    for side, price, qty, fee, asset, redeliver in operations:
        rep = report(side, (str(price), str(qty), str(fee), asset))
        before = book.qty
        result = book.apply(rep)
        assert book.qty >= 0
        assert result.clamped == (
            side is Side.SELL and qty + (fee if asset == "BTC" else 0) > before
        )
        if redeliver:
            snapshot = book.to_hash()
            assert not book.apply(rep).applied
            assert book.to_hash() == snapshot
        book.mark(price)
        assert (
            book.max_drawdown >= 0
            and book.peak_equity is not None
            and book.peak_equity >= book.equity
        )


@settings(max_examples=100, deadline=None)
@given(ops, prices)
def test_serialised_book_round_trips_and_behaves_the_same(
    operations: list[tuple[Side, D, D, D, str, bool]], mark: D
) -> None:
    book = new_book(exit_plan=ExitPlan(D(1), D(2), D(3)))
    reports = [report(side, (str(p), str(q), str(f), a)) for side, p, q, f, a, _ in operations]
    half = len(reports) // 2
    for rep in reports[:half]:
        book.apply(rep)
    book.mark(mark)
    restored = BotBook.from_hash(book.to_hash(), exit_plan=ExitPlan(D(1), D(2), D(3)))
    assert restored.to_hash() == book.to_hash()
    for rep in reports:  # the first half are duplicates for both
        assert book.apply(rep) == restored.apply(rep)
    assert restored.to_hash() == book.to_hash()


def test_atr_stops_are_set_at_entry_from_the_noted_atr_and_persist() -> None:
    plan = ExitPlan(stop_loss_atr=D(3), take_profit_atr=D(2))
    book = new_book(exit_plan=plan)
    book.note_atr(float("nan"))  # ignored: no ATR yet
    book.note_atr(None)
    assert book.atr is None
    book.note_atr(1.5)
    book.apply(report(Side.BUY, ("100", "1", "0", "USDT")))
    assert (book.stop_price, book.take_profit_price) == (D("95.5"), D(103))
    restored = BotBook.from_hash(book.to_hash(), exit_plan=plan)
    assert restored.atr == D("1.5") and restored.stop_price == D("95.5")
    assert restored.check_exit(D("95.4")).reason is ExitReason.STOP_LOSS
