"""Parameter sweeps: one bot config, a grid over its strategy's parameters, across cores.

Every point of the grid is a bot config validated as the API validates one (a point
the strategy refuses is reported, not run) and backtested by :class:`Backtest` on the
same file. With a walk-forward split, each point is fitted on the candles before the
split and reported on those after it (the strategy has seen the fit period, as a
seeded live bot; no decision is made in it): a point whose figure falls from the fit
period to the test period was fitted to noise. Ranked by a chosen figure of the fit
period (or of the whole file without a split).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.backtest.engine import Backtest
from shared.binance.rules import SymbolRules
from shared.fills import Costs
from shared.klines import read_klines
from shared.strategies.config import BotConfig
from shared.validation import describe

RANKABLE = ("net_pnl_pct", "sharpe", "sortino", "profit_factor", "win_rate_pct", "expectancy")
FIGURES = ("net_pnl_pct", "round_trips", "win_rate_pct", "profit_factor", "sharpe",
           "max_drawdown_pct")  # fmt: skip


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's order."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def split_time(path: Path, interval: str, fmt: str, fraction: float) -> tuple[int, int]:
    """(open time of the first test candle, candles in the file) for a fit ``fraction``."""
    times = [k.open_time for k in read_klines(path, interval, fmt)]
    if len(times) < 2:
        return times[0] if times else 0, len(times)
    return times[min(len(times) - 1, max(1, int(len(times) * fraction)))], len(times)


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in FIGURES}


def run_point(
    config: dict[str, Any],
    path: str,
    fmt: str,
    rules_json: bytes,
    costs_json: bytes,
    split_at: int | None,
) -> dict[str, Any]:
    """One grid point (in a worker process): its fit and test figures, or its error."""
    import msgspec

    try:
        bot = BotConfig.model_validate(config)
    except ValidationError as exc:
        return {"params": config["params"], "error": describe(exc)}
    rules = msgspec.json.decode(rules_json, type=SymbolRules)
    costs = msgspec.json.decode(costs_json, type=Costs)
    fit = Backtest(bot, rules, costs).run(
        read_klines(Path(path), bot.interval, fmt), end_before=split_at
    )
    out: dict[str, Any] = {"params": bot.params, "fit": _figures(fit.summary())}
    if split_at is not None:
        test = Backtest(bot, rules, costs, start_at=split_at)
        test.run(read_klines(Path(path), bot.interval, fmt))
        out["test"] = _figures(test.summary())
    return out


def _key(row: dict[str, Any], rank: str) -> float:
    value = row.get("fit", {}).get(rank)
    return float(value) if value is not None else float("-inf")


def sweep(
    base: dict[str, Any],
    grid: Mapping[str, Sequence[Any]],
    path: Path,
    fmt: str,
    rules: SymbolRules,
    costs: Costs,
    *,
    rank: str = "net_pnl_pct",
    split: float | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Every grid point's figures, best first by ``rank`` (of the fit period)."""
    import msgspec

    if rank not in RANKABLE:
        raise ValueError(f"--rank must be one of {', '.join(RANKABLE)}")
    interval = str(base.get("interval"))
    split_at = None
    count = 0
    if split is not None:
        split_at, count = split_time(path, interval, fmt, split)
    points = [{**base, "params": {**base.get("params", {}), **p}} for p in grid_points(grid)]
    rules_json, costs_json = msgspec.json.encode(rules), msgspec.json.encode(costs)
    workers = workers or os.cpu_count() or 1
    args = [(p, str(path), fmt, rules_json, costs_json, split_at) for p in points]
    if workers == 1:
        rows = [run_point(*a) for a in args]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(run_point, *zip(*args, strict=True)))
    good = sorted((r for r in rows if "error" not in r), key=lambda r: -_key(r, rank))
    return {
        "rank": rank,
        "split_at": split_at,
        "candles": count or None,
        "points": len(points),
        "results": good,
        "errors": [r for r in rows if "error" in r],
    }


def render(result: dict[str, Any]) -> str:
    head = f"{result['points']} points ranked by {result['rank']}"
    if result["split_at"] is not None:
        head += f"; fit before open time {result['split_at']}, test after (fit -> test)"
    lines = [head]
    for row in result["results"]:
        fit, test = row["fit"], row.get("test")
        figures = "  ".join(
            f"{k}={fit[k]}" + (f"->{test[k]}" if test is not None else "") for k in FIGURES
        )
        lines.append(f"  {json.dumps(row['params'], sort_keys=True)}  {figures}")
    for row in result["errors"]:
        lines.append(f"  {json.dumps(row['params'], sort_keys=True)}  refused: {row['error']}")
    return "\n".join(lines)
