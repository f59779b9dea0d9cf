"""The terminal table of a backtest result (the ``--json`` document, rendered)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_FIGURES = (
    ("candles", "candles (warm-up)"),
    ("net_pnl", "net PnL"),
    ("net_pnl_pct", "net PnL %"),
    ("buy_and_hold_pct", "buy and hold %"),
    ("final_equity", "final equity"),
    ("round_trips", "round trips"),
    ("win_rate_pct", "win rate %"),
    ("profit_factor", "profit factor"),
    ("expectancy", "expectancy"),
    ("max_drawdown", "max drawdown"),
    ("max_drawdown_pct", "max drawdown %"),
    ("sharpe", "Sharpe"),
    ("sortino", "Sortino"),
    ("exposure_pct", "exposure %"),
    ("fees", "fees paid"),
)
MAX_TRADE_ROWS = 20


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def render(result: dict[str, Any]) -> str:
    bot = result["bot"]
    lines = [
        f"{bot['name']}: {bot['strategy']} on {bot['symbol']} {bot['interval']}, "
        f"{_time(result['start'])} .. {_time(result['end'])}",
        "",
    ]
    for warning in result["warnings"]:
        lines.append(f"  warning: {warning}")
    for key, label in _FIGURES:
        value = result[key]
        if key == "candles":
            value = f"{value} ({result['warmup_candles']})"
        lines.append(f"  {label:<20} {'-' if value is None else value}")
    if result["open_position"]:
        pos = result["open_position"]
        lines.append(f"  {'open at the end':<20} {pos['qty']} @ {pos['entry_price']}")
    if result["refused_orders"]:
        lines.append(f"  {'refused orders':<20} {result['refused_count']}")
    trades = result["trades"]
    if trades:
        lines += ["", f"  {'opened':<16} {'closed':<16} {'qty':>14} {'pnl':>14}  exit"]
        for t in trades[-MAX_TRADE_ROWS:]:
            lines.append(
                f"  {_time(t['opened_at']):<16} {_time(t['closed_at']):<16} "
                f"{t['qty']:>14} {t['pnl'][:14]:>14}  {t['exit_reason'][:40]}"
            )
        if len(trades) > MAX_TRADE_ROWS:
            lines.append(f"  ... the last {MAX_TRADE_ROWS} of {len(trades)} (--json for all)")
    return "\n".join(lines)
