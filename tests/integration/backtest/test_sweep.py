"""``botfleet backtest-sweep`` as a process: every grid point run across worker processes,
ranked, with a walk-forward split; each point's figures equal a single backtest of
that config over the same candles (fit: the candles before the split; test: after it,
the strategy having seen the fit period), and points the strategy refuses are listed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.backtest.engine import Backtest
from services.backtest.rules import default_rules
from services.backtest.sweep import FIGURES, random_points
from shared.fills import Costs
from shared.klines import read_klines
from shared.strategies.config import BotConfig
from tests.integration.backtest.test_parity import write_file
from tests.support.processes import base_env

BASE = {
    "name": "sweep",
    "symbol": "BTCUSDT",
    "interval": "1h",
    "strategy": "ema_cross",
    "params": {},
    "quote_allocation": "1000",
    "stop_loss_pct": "2",
}


def test_a_walk_forward_grid_equals_single_backtests_of_each_point(tmp_path: Path) -> None:
    klines = tmp_path / "BTCUSDT-1h.csv"
    write_file(klines, 2500, 3_600_000, seed=11)
    bot = tmp_path / "bot.json"
    bot.write_text(json.dumps(BASE))
    grid = {"fast_period": [5, 9], "slow_period": [21, 30, 4]}
    proc = subprocess.run(
        [sys.executable, "-m", "services", "backtest-sweep", str(bot), str(klines),
         "--grid", json.dumps(grid), "--split", "0.6", "--workers", "2", "--json"],
        env=base_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["points"] == 6
    assert [e["params"]["slow_period"] for e in result["errors"]] == [4, 4]
    rows = result["results"]
    assert len(rows) == 4
    ranks = [float(r["fit"]["net_pnl_pct"]) for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    split_at = result["split_at"]
    times = [k.open_time for k in read_klines(klines, "1h")]
    assert split_at == times[int(len(times) * 0.6)]
    for row in rows:
        config = BotConfig.model_validate({**BASE, "params": row["params"]})
        fit = Backtest(config, default_rules("BTCUSDT"), Costs())
        fit.run(read_klines(klines, "1h"), end_before=split_at)
        test = Backtest(config, default_rules("BTCUSDT"), Costs(), start_at=split_at)
        test.run(read_klines(klines, "1h"))
        fit_summary, test_summary = fit.summary(), test.summary()
        assert row["fit"] == {k: fit_summary[k] for k in FIGURES}
        assert row["test"] == {k: test_summary[k] for k in FIGURES}
        assert test.trips and all(t.opened_at >= split_at for t in test.trips)
        assert all(t.closed_at < split_at for t in fit.trips)


def test_a_random_search_runs_the_points_its_seed_draws(tmp_path: Path) -> None:
    klines = tmp_path / "BTCUSDT-1h.csv"
    write_file(klines, 800, 3_600_000, seed=12)
    bot = tmp_path / "bot.json"
    bot.write_text(json.dumps(BASE))
    grid = {"fast_period": [3, 5, 7, 9], "slow_period": [20, 25, 30]}
    command = [sys.executable, "-m", "services", "backtest-sweep", str(bot), str(klines),
               "--grid", json.dumps(grid), "--random", "4", "--seed", "5", "--workers", "2"]  # fmt: skip
    runs = []
    for extra in (["--json"], []):
        proc = subprocess.run(
            [*command, *extra], env=base_env(), capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs.append(proc)
    result = json.loads(runs[0].stdout)
    assert (result["points"], result["seed"], len(result["results"])) == (4, 5, 4)
    drawn = [{k: row["params"][k] for k in grid} for row in result["results"]]
    assert sorted(map(str, drawn)) == sorted(map(str, random_points(grid, 4, seed=5)))
    assert (
        "4 points ranked by net_pnl_pct (drawn at random from the grid, seed 5)" in runs[1].stdout
    )
