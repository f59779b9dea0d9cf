"""Parameter sweeps: one bot config, a grid over its strategy's parameters, across cores.

Every point of the grid (or ``random`` points drawn from it with a ``seed``) is a bot
config validated as the API validates one (a point the strategy refuses is reported,
not run) and backtested by :class:`Backtest` on the same file. The file is read once,
into column chunks, before the worker processes are forked: each worker reads the
candles from its copy of the parent's memory, and takes its points in batches. With a walk-forward split, each point is fitted on the candles before the
split and reported on those after it (the strategy has seen the fit period, as a
seeded live bot; no decision is made in it): a point whose figure falls from the fit
period to the test period was fitted to noise. Ranked by a chosen figure of the fit
period (or of the whole file without a split).
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import random as rand
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.backtest.columns import Columns, read_columns
from services.backtest.engine import Backtest
from shared.binance.rules import SymbolRules
from shared.fills import Costs
from shared.strategies.config import BotConfig
from shared.validation import describe

# The sweep's candles, set in the parent before the workers fork (read-only after).
_CANDLES: list[Columns] = []

RANKABLE = ("net_pnl_pct", "sharpe", "sortino", "profit_factor", "win_rate_pct", "expectancy")
FIGURES = ("net_pnl_pct", "round_trips", "win_rate_pct", "profit_factor", "sharpe",
           "max_drawdown_pct")  # fmt: skip


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's order."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def random_points(grid: Mapping[str, Sequence[Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct combinations drawn from the grid (all of them, in the grid's order,
    when it has no more than ``n``); the same ``seed`` draws the same points."""
    if n < 1:
        raise ValueError("--random must be at least 1")
    sizes = [len(v) for v in grid.values()]
    total = math.prod(sizes)
    if total <= n:
        return grid_points(grid)
    keys, values = list(grid), list(grid.values())
    out = []
    for index in sorted(rand.Random(seed).sample(range(total), n)):
        point = {}
        for key, options, size in zip(
            reversed(keys), reversed(values), reversed(sizes), strict=True
        ):
            index, pick = divmod(index, size)
            point[key] = options[pick]
        out.append({key: point[key] for key in keys})
    return out


def split_time(chunks: Sequence[Columns], fraction: float) -> tuple[int, int]:
    """(open time of the first test candle, candles) for a fit ``fraction`` of ``chunks``."""
    times = [t for chunk in chunks for t in chunk.open_time]
    if len(times) < 2:
        return times[0] if times else 0, len(times)
    return times[min(len(times) - 1, max(1, int(len(times) * fraction)))], len(times)


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in FIGURES}


def run_point(
    config: dict[str, Any], rules_json: bytes, costs_json: bytes, split_at: int | None
) -> dict[str, Any]:
    """One grid point over the sweep's candles: its fit and test figures, or its error."""
    import msgspec

    try:
        bot = BotConfig.model_validate(config)
    except ValidationError as exc:
        return {"params": config["params"], "error": describe(exc)}
    rules = msgspec.json.decode(rules_json, type=SymbolRules)
    costs = msgspec.json.decode(costs_json, type=Costs)
    fit = Backtest(bot, rules, costs).feed(_CANDLES, end_before=split_at)
    out: dict[str, Any] = {"params": bot.params, "fit": _figures(fit.summary())}
    if split_at is not None:
        test = Backtest(bot, rules, costs, start_at=split_at).feed(_CANDLES)
        out["test"] = _figures(test.summary())
    return out


def _run_points(args: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [run_point(*a) for a in args]


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
    random: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every grid point's figures (or ``random`` points' drawn with ``seed``), best
    first by ``rank`` (of the fit period)."""
    import msgspec

    global _CANDLES
    if rank not in RANKABLE:
        raise ValueError(f"--rank must be one of {', '.join(RANKABLE)}")
    chosen = grid_points(grid) if random is None else random_points(grid, random, seed)
    _CANDLES = list(read_columns(path, str(base.get("interval")), fmt))
    try:
        split_at = None
        count = 0
        if split is not None:
            split_at, count = split_time(_CANDLES, split)
        points = [{**base, "params": {**base.get("params", {}), **p}} for p in chosen]
        rules_json, costs_json = msgspec.json.encode(rules), msgspec.json.encode(costs)
        workers = min(workers or os.cpu_count() or 1, len(points))
        args = [(p, rules_json, costs_json, split_at) for p in points]
        if workers <= 1:
            rows = _run_points(args)
        else:
            # a few batches per worker: the points of a strategy take unequal times
            size = max(1, math.ceil(len(args) / (workers * 4)))
            batches = [args[i : i + size] for i in range(0, len(args), size)]
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                rows = [row for batch in pool.map(_run_points, batches) for row in batch]
    finally:
        _CANDLES = []
    good = sorted((r for r in rows if "error" not in r), key=lambda r: -_key(r, rank))
    return {
        "rank": rank,
        "split_at": split_at,
        "candles": count or None,
        "points": len(points),
        "seed": seed if random is not None else None,
        "results": good,
        "errors": [r for r in rows if "error" in r],
    }


def render(result: dict[str, Any]) -> str:
    head = f"{result['points']} points ranked by {result['rank']}"
    if result.get("seed") is not None:
        head += f" (drawn at random from the grid, seed {result['seed']})"
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
