"""The figures of a backtest result, against their definitions computed another way."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.backtest.engine import Curve, Returns
from services.backtest.metrics import sharpe_sortino, trade_figures
from shared.strategies.accounting import RoundTrip


def trip(pnl: str, fees: str = "1") -> RoundTrip:
    return RoundTrip(
        symbol="BTCUSDT",
        opened_at=0,
        closed_at=1,
        qty=Decimal(1),
        entry_price=Decimal(100),
        exit_price=Decimal(100),
        cost=Decimal(100),
        proceeds=Decimal(100) + Decimal(pnl),
        fees=Decimal(fees),
        pnl=Decimal(pnl),
        pnl_pct=Decimal(pnl),
    )


def test_trade_figures_of_known_trips() -> None:
    got = trade_figures([trip("10"), trip("-4"), trip("6"), trip("-2"), trip("0")])
    assert got["round_trips"] == 5
    assert (got["wins"], got["losses"]) == (2, 3)  # a zero trip is not a win (BotBook)
    assert got["win_rate_pct"] == "40.00"
    assert Decimal(got["gross_profit"]) == 16 and Decimal(got["gross_loss"]) == 6
    assert got["profit_factor"] == "2.6667"
    assert Decimal(got["expectancy"]) == Decimal("2")
    assert Decimal(got["trade_fees"]) == 5


def test_no_losing_trade_has_no_profit_factor_and_no_trades_no_figures() -> None:
    assert trade_figures([trip("3")])["profit_factor"] is None
    empty = trade_figures([])
    assert empty["round_trips"] == 0 and empty["win_rate_pct"] == "0"


@given(st.lists(st.floats(min_value=-0.1, max_value=0.1), min_size=2, max_size=200))
def test_sharpe_and_sortino_equal_their_definitions(returns: list[float]) -> None:
    r = Returns()
    for x in returns:
        r.add(x)
    sharpe, sortino = sharpe_sortino(r.n, r.total, r.squares, r.downside, 365.0)
    mean = statistics.fmean(returns)
    sd = statistics.stdev(returns)
    if sd > 1e-9:
        assert sharpe is not None
        assert math.isclose(sharpe, mean / sd * math.sqrt(365), rel_tol=1e-6, abs_tol=1e-6)
    down = math.sqrt(sum(min(x, 0.0) ** 2 for x in returns) / len(returns))
    if down > 0:
        assert sortino is not None
        assert math.isclose(sortino, mean / down * math.sqrt(365), rel_tol=1e-9, abs_tol=1e-9)
    else:
        assert sortino is None


@given(st.lists(st.floats(min_value=1, max_value=1e6), min_size=1, max_size=300))
def test_max_drawdown_is_the_largest_fall_from_a_peak(equity: list[float]) -> None:
    r = Returns(peak=equity[0])
    for e in equity:
        r.equity(e)
    expected = max(max(equity[: i + 1]) - e for i, e in enumerate(equity))
    assert math.isclose(r.max_dd, expected, rel_tol=1e-12, abs_tol=1e-9)


@given(st.integers(min_value=0, max_value=20_000))
def test_the_equity_curve_stays_small_and_keeps_the_start(n: int) -> None:
    curve = Curve()
    for i in range(n):
        curve.add(i, float(i))
    assert len(curve.points) < 2000
    if n:
        assert curve.points[0] == (0, 0.0)
        times = [t for t, _ in curve.points]
        assert times == sorted(times)
        assert all(t % curve.stride == 0 for t in times)
