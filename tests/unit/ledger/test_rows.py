"""The ledger's pure parts: rows of a report, round trips read from Redis, cursors, CSV,
database URLs and the reconciliation of two sides (no database, no Redis)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.check import Difference, Fill, compare, reconcile
from services.ledger.writer import equity_row, fill_key, report_rows, trip_row
from shared.ledger.engine import async_url, sqlite_path
from shared.ledger.history import Trade, csv_header, csv_rows, parse_cursor
from shared.messages import ExecutionReport, ExecutionStatus, Side
from shared.messages import Fill as WireFill


def wire(
    final: bool = True, trade_ids: tuple[int, ...] = (11, 12), mode: str = "live"
) -> ExecutionReport:
    return ExecutionReport(
        intent_id="b1:c1:buy", client_order_id="bf-1", bot_id="b1", symbol="BTCUSDT",
        side=Side.BUY, status=ExecutionStatus.FILLED if final else ExecutionStatus.PARTIALLY_FILLED,
        final=final, executed_qty=Decimal("0.3"), mode=mode, ts=5,
        fills=tuple(
            WireFill(price=Decimal("100.5"), qty=Decimal("0.1"), commission=Decimal("0.0001"),
                     commission_asset="BNB", trade_id=t)
            for t in trade_ids
        ),
    )  # fmt: skip


def test_a_final_report_is_one_order_and_one_row_per_fill_keyed_by_trade_id() -> None:
    order, fills = report_rows(wire(), "9-0")
    assert order is not None and order["intent_id"] == "b1:c1:buy" and order["stream_id"] == "9-0"
    assert [f["fill_key"] for f in fills] == ["live:BTCUSDT:11", "live:BTCUSDT:12"]
    assert fills[0]["quote_qty"] == Decimal("10.05") and isinstance(fills[0]["price"], Decimal)


def test_a_report_that_is_not_final_writes_its_fills_but_no_order() -> None:
    order, fills = report_rows(wire(final=False), "9-0")
    assert order is None and len(fills) == 2


def test_fills_without_an_exchange_trade_id_are_keyed_by_intent_and_place() -> None:
    report = wire(trade_ids=(0, 0), mode="paper")
    assert [fill_key(report, n, 0) for n in range(2)] == ["b1:c1:buy#0", "b1:c1:buy#1"]


def test_a_round_trip_from_redis_fields() -> None:
    fields = {
        "symbol": "ETHUSDT", "opened_at": "1", "closed_at": "2", "qty": "1", "entry_price": "2",
        "exit_price": "3", "cost": "2", "proceeds": "3", "fees": "0.01", "pnl": "0.99",
        "pnl_pct": "49.5",
    }  # fmt: skip
    row = trip_row("b1", fields)
    assert row["trip_key"] == "b1:ETHUSDT:1:2" and row["pnl"] == Decimal("0.99")
    assert row["exit_reason"] == "" and row["dust"] == Decimal(0)


@given(st.dictionaries(st.sampled_from(["symbol", "opened_at", "closed_at", "qty", "entry_price",
                                        "exit_price", "cost", "proceeds", "fees", "pnl", "pnl_pct",
                                        "dust", "exit_reason"]),
                       st.text(max_size=30)))  # fmt: skip
def test_any_round_trip_fields_give_a_row_or_a_value_error(fields: dict[str, str]) -> None:
    try:
        row = trip_row("b1", fields)
    except ValueError:
        return
    assert all(row[k].is_finite() for k in ("qty", "pnl", "fees", "dust"))


def test_equity_row_is_dated_by_the_utc_day() -> None:
    row = equity_row("b1", {"equity": "10.5", "trades": "3"}, 1_704_067_199_999)
    assert row["day"] == "2023-12-31" and row["equity"] == Decimal("10.5") and row["trades"] == 3
    assert equity_row("b1", {}, 1_704_067_200_000)["day"] == "2024-01-01"


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "9" * 19, "9" * 20, " 1", "١٢"])
def test_a_cursor_is_a_row_id_or_refused(bad: str) -> None:
    assert parse_cursor("123") == 123 and parse_cursor(None) is None
    with pytest.raises(ValueError):
        parse_cursor(bad)


def test_csv_quotes_what_needs_quoting_and_keeps_decimals_exact() -> None:
    trade = Trade(
        id=1, ts=2, bot_id="b,1", symbol="BTCUSDT", side="BUY", price=Decimal("0.00000001"),
        qty=Decimal("1E+2"), quote_qty=Decimal("1"), commission=Decimal(0),
        commission_asset='B"N', trade_id=3, exchange_order_id=None, client_order_id="c",
        intent_id="i", mode="live", is_exit=False,
    )  # fmt: skip
    (row,) = list(csv.DictReader(io.StringIO(csv_header(Trade) + csv_rows([trade]))))
    assert row["bot_id"] == "b,1" and row["commission_asset"] == 'B"N'
    assert row["price"] == "1E-8" and Decimal(row["price"]) == Decimal("0.00000001")
    assert row["exchange_order_id"] == "" and row["is_exit"] == "false"


def test_database_urls_get_their_async_driver() -> None:
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("sqlite:///data/l.db") == "sqlite+aiosqlite:///data/l.db"
    assert sqlite_path("sqlite:////abs/l.db") == "/abs/l.db"
    assert sqlite_path("postgresql://u@h/db") is None
    with pytest.raises(ValueError):
        async_url("mysql://u@h/db")


def fill(trade_id: int, **kw: object) -> Fill:
    values: dict[str, object] = dict(
        symbol="BTCUSDT", trade_id=trade_id, order_id=1, side="BUY", price=Decimal("10"),
        qty=Decimal("1"), commission=Decimal("0.01"), commission_asset="BNB", time=0,
    )  # fmt: skip
    values.update(kw)
    return Fill(**values)  # type: ignore[arg-type]


def test_decimals_are_compared_by_value_and_each_wrong_field_is_named() -> None:
    assert compare(fill(1), fill(1, price=Decimal("10.000"))) is None
    diff = compare(fill(1), fill(1, qty=Decimal("2"), side="SELL"))
    assert diff is not None and "side: ledger BUY exchange SELL" in diff.detail
    assert "qty: ledger 1 exchange 2" in diff.detail


def test_reconcile_names_each_kind_of_difference() -> None:
    ledger = {("BTCUSDT", 1): fill(1), ("BTCUSDT", 2): fill(2)}
    exchange = {("BTCUSDT", 1): fill(1, price=Decimal(11)), ("BTCUSDT", 3): fill(3)}
    kinds = [(d.kind, d.trade_id) for d in reconcile(ledger, exchange, {}, {})]
    assert kinds == [("mismatch", 1), ("missing_on_exchange", 2), ("missing_in_ledger", 3)]
    assert isinstance(reconcile(ledger, exchange, {}, {})[0], Difference)
