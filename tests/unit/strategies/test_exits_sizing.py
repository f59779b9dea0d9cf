"""Exit rules and entry sizing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from shared.strategies.config import FixedQuoteSizing, PercentEquitySizing, RiskSizing
from shared.strategies.exits import ExitPlan, ExitPosition, ExitReason, check_exit, exit_levels
from shared.strategies.sizing import size_entry, stop_distance


def position(**kw: D | None) -> ExitPosition:
    levels = exit_levels(ExitPlan(D(2), D(5)), D(100))
    args = {"qty": D(1), "entry_price": D(100), "stop_price": levels.stop_price,
            "take_profit_price": levels.take_profit_price, "trailing_high": None}  # fmt: skip
    args.update(kw)
    return ExitPosition(**args)  # type: ignore[arg-type]


def test_levels_are_percentages_of_entry() -> None:
    levels = exit_levels(ExitPlan(D("2"), D("5")), D("100"))
    assert (levels.stop_price, levels.take_profit_price) == (D(98), D(105))
    assert exit_levels(ExitPlan(), D(100)).stop_price is None


@pytest.mark.parametrize(
    ("price", "reason"),
    [(D(98), ExitReason.STOP_LOSS), (D("97.5"), ExitReason.STOP_LOSS), (D(105), ExitReason.TAKE_PROFIT),
     (D("98.01"), None), (D("104.99"), None)],
)  # fmt: skip
def test_stop_and_take_profit(price: D, reason: ExitReason | None) -> None:
    assert check_exit(position(), price).reason is reason


def test_trailing_high_only_rises_and_the_trailing_stop_follows_it() -> None:
    pos = position(take_profit_price=None)
    check = check_exit(pos, D(104), D(3))
    assert (check.reason, check.trailing_high, check.trailing_high_changed) == (None, D(104), True)
    pos = position(take_profit_price=None, trailing_high=check.trailing_high)
    lower = check_exit(pos, D(102), D(3))
    assert (lower.reason, lower.trailing_high, lower.trailing_high_changed) == (None, D(104), False)
    hit = check_exit(pos, D("100.88"), D(3))
    assert hit.reason is ExitReason.TRAILING_STOP and hit.level == D("100.88")


def test_a_gap_through_two_levels_reports_the_one_met_first() -> None:
    pos = position(trailing_high=D(110))  # trailing stop at 106.7, stop at 98
    assert check_exit(pos, D(90), D(3)).reason is ExitReason.TRAILING_STOP
    pos = position(trailing_high=D(100))  # trailing stop at 90, stop at 98
    assert check_exit(pos, D(89), D(10)).reason is ExitReason.STOP_LOSS


def test_no_exit_without_a_position() -> None:
    assert check_exit(position(qty=D(0)), D(1)).reason is None


def test_fixed_and_percent_sizing() -> None:
    s = size_entry(FixedQuoteSizing(quote_amount=D(100)), equity=D(1000), price=D(50))
    assert (s.quote, s.qty, s.capped) == (D(100), D(2), False)
    s = size_entry(PercentEquitySizing(percent=D(25)), equity=D(1000), price=D(50))
    assert (s.quote, s.qty) == (D(250), D(5))
    s = size_entry(FixedQuoteSizing(quote_amount=D(100)), equity=D(60), price=D(50))
    assert (s.quote, s.capped) == (D(60), True)
    s = size_entry(PercentEquitySizing(percent=D(25)), equity=D(-5), price=D(50))
    assert s.quote == 0


def test_risk_sizing_loses_risk_pct_of_equity_at_the_stop() -> None:
    price, equity = D(200), D(1000)
    dist = stop_distance(price, D(2))  # 4
    s = size_entry(RiskSizing(risk_pct=D(1)), equity=equity, price=price, stop_distance=dist)
    assert s.qty * dist == D(10)  # 1 % of 1000
    assert s.quote == D(500)
    capped = size_entry(RiskSizing(risk_pct=D(5)), equity=equity, price=price, stop_distance=dist)
    assert capped.capped and capped.quote == equity
    with pytest.raises(ValueError):
        size_entry(RiskSizing(risk_pct=D(1)), equity=equity, price=price)
    with pytest.raises(ValueError):
        size_entry(RiskSizing(risk_pct=D(1)), equity=equity, price=D(0), stop_distance=dist)
