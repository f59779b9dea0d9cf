"""The figures traders compare, pure: from round trips, running return sums and the book.

Money figures are Decimal (from the book's round trips); ratios of the equity curve
(Sharpe, Sortino, max drawdown of the per-candle equity) are floats, annualised with
the number of candles in a year of the interval. Sharpe and Sortino take a risk-free
rate of 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.strategies.accounting import RoundTrip

if TYPE_CHECKING:
    from services.backtest.engine import Backtest

ZERO = Decimal(0)
_HUNDRED = Decimal(100)


def trade_figures(trips: Sequence[RoundTrip]) -> dict[str, Any]:
    """Win rate, profit factor, expectancy and sums over closed round trips."""
    wins = [t.pnl for t in trips if t.pnl > 0]
    losses = [t.pnl for t in trips if t.pnl <= 0]
    gross_win = sum(wins, ZERO)
    gross_loss = -sum(losses, ZERO)
    n = len(trips)
    if gross_loss > 0:
        profit_factor: str | None = str((gross_win / gross_loss).quantize(Decimal("0.0001")))
    else:
        profit_factor = None  # no losing trade: undefined (infinite)
    return {
        "round_trips": n,
        "wins": len(wins),
        "losses": len(losses),
        "win_rate_pct": str((_HUNDRED * len(wins) / n).quantize(Decimal("0.01"))) if n else "0",
        "gross_profit": str(gross_win),
        "gross_loss": str(gross_loss),
        "profit_factor": profit_factor,
        "expectancy": str((sum((t.pnl for t in trips), ZERO) / n).quantize(Decimal("1e-8")))
        if n
        else "0",
        "trade_fees": str(sum((t.fees for t in trips), ZERO)),
    }


def sharpe_sortino(
    n: int, total: float, squares: float, downside: float, per_year: float
) -> tuple[float | None, float | None]:
    """Annualised Sharpe and Sortino of ``n`` per-candle returns given their sum, sum of
    squares and sum of squared negative returns (None when undefined)."""
    if n < 2:
        return None, None
    mean = total / n
    var = max(squares / n - mean * mean, 0.0) * n / (n - 1)
    scale = math.sqrt(per_year)
    sharpe = mean / math.sqrt(var) * scale if var > 0 else None
    down = math.sqrt(downside / n)
    sortino = mean / down * scale if down > 0 else None
    return sharpe, sortino


def _round(x: float | None, places: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, places)


def summarize(bt: Backtest) -> dict[str, Any]:
    """Everything a run reports (the ``--json`` document)."""
    from services.backtest.engine import periods_per_year

    book, cfg = bt.book, bt.config
    start, end = bt.first_decided, bt.last
    equity = book.equity
    net = equity - book.allocation
    r = bt.returns
    sharpe, sortino = sharpe_sortino(
        r.n, r.total, r.squares, r.downside, periods_per_year(bt.interval_ms)
    )
    hold = None
    if start is not None and end is not None:
        first, last = Decimal(start.text[3]), Decimal(end.text[3])
        hold = str(((last - first) / first * _HUNDRED).quantize(Decimal("0.01")))
    warnings = []
    if bt.candles < bt.warmup:
        warnings.append(
            f"{bt.candles} candles, fewer than the {bt.warmup} of the strategy's declared "
            "warm-up: no decision was made"
        )
    return {
        "bot": cfg.model_dump(mode="json"),
        "warnings": warnings,
        "candles": bt.candles,
        "warmup_candles": bt.warmup,
        "decided_candles": bt.decided,
        "start": start.open_time if start else None,
        "end": end.close_time if end else None,
        "allocation": str(book.allocation),
        "final_equity": str(equity.quantize(Decimal("1e-8"))),
        "net_pnl": str(net.quantize(Decimal("1e-8"))),
        "net_pnl_pct": str((net / book.allocation * _HUNDRED).quantize(Decimal("0.01"))),
        "realized_pnl": str(book.realized_pnl),
        "fees": str(book.fees),
        **trade_figures(bt.trips),
        "max_drawdown": _round(r.max_dd, 8),
        "max_drawdown_pct": _round(r.max_dd_pct * 100, 2),
        "sharpe": _round(sharpe),
        "sortino": _round(sortino),
        "exposure_pct": round(100 * bt.in_position / bt.decided, 2) if bt.decided else 0.0,
        "buy_and_hold_pct": hold,
        "open_position": {
            "qty": str(book.qty),
            "entry_price": str(book.entry_price),
            "unrealized_pnl": str(book.unrealized_pnl),
        }
        if book.qty > 0
        else None,
        "refused_count": bt.refused,
        "refused_orders": [
            {"open_time": x.open_time, "side": x.side, "reason": x.reason} for x in bt.refusals
        ],
        "trades": [
            {
                "opened_at": t.opened_at,
                "closed_at": t.closed_at,
                "qty": str(t.qty),
                "entry_price": str(t.entry_price),
                "exit_price": str(t.exit_price),
                "fees": str(t.fees),
                "pnl": str(t.pnl),
                "pnl_pct": str(t.pnl_pct.quantize(Decimal("0.0001"))),
                "exit_reason": t.exit_reason,
                "dust": str(t.dust),
            }
            for t in bt.trips
        ],
        "equity_curve": [[t, round(e, 8)] for t, e in bt.curve.points],
    }
