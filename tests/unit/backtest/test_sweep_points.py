"""Random search beside the grid: distinct points of the grid, the same for the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.backtest.columns import read_columns
from services.backtest.engine import Backtest
from services.backtest.rules import default_rules
from services.backtest.sweep import FIGURES, grid_points, random_points, sweep
from shared.fills import Costs
from shared.strategies.config import BotConfig
from tests.unit.backtest.test_chunks import write

GRID = {
    "fast_period": [3, 5, 7, 9],
    "slow_period": [20, 30, 40],
    "sell_on_cross_down": [True, False],
}


def test_random_points_are_distinct_points_of_the_grid_drawn_by_the_seed() -> None:
    every = grid_points(GRID)
    drawn = random_points(GRID, 7, seed=3)
    assert len(drawn) == 7
    assert all(p in every for p in drawn)
    assert len({tuple(p.values()) for p in drawn}) == 7
    assert drawn == random_points(GRID, 7, seed=3)
    assert drawn != random_points(GRID, 7, seed=4)
    assert [list(p) for p in drawn] == [list(GRID)] * 7  # keys in the grid's order
    assert random_points(GRID, 24, seed=1) == every
    assert random_points(GRID, 100, seed=1) == every
    with pytest.raises(ValueError, match="--random must be at least 1"):
        random_points(GRID, 0, seed=1)


def test_a_random_sweep_reports_each_drawn_point_as_its_own_backtest(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    write(path, 1500)
    base = {"name": "s", "symbol": "BTCUSDT", "interval": "1h", "strategy": "ema_cross",
            "quote_allocation": "1000", "stop_loss_pct": "2"}  # fmt: skip
    rules, costs = default_rules("BTCUSDT"), Costs()
    result = sweep(base, GRID, path, "csv", rules, costs, random=5, seed=9, workers=1)
    assert (result["points"], result["seed"]) == (5, 9)
    assert sorted(map(str, (r["params"] for r in result["results"]))) == sorted(
        map(str, ({**p} for p in random_points(GRID, 5, seed=9)))
    )
    for row in result["results"]:
        bot = BotConfig.model_validate({**base, "params": row["params"]})
        alone = Backtest(bot, rules, costs).feed(read_columns(path, "1h")).summary()
        assert row["fit"] == {k: alone[k] for k in FIGURES}
