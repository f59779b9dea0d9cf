"""``botfleet backtest`` as a process: a recorded kline file and generated ones, every input
format, the exchange's own rules file, and refusals (exit 2) worded as the API words them."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.strategies.config import BotConfig
from shared.validation import field_errors
from tests.integration.backtest.test_parity import write_file
from tests.support.processes import base_env

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
RECORDED = FIXTURES / "replay" / "BTCUSDT-1m.csv"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", "backtest", *args],
        env=base_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def bot_file(tmp_path: Path, **fields: Any) -> Path:
    body = {
        "name": "cli",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "strategy": "rsi",
        "params": {"period": 5, "oversold": 40, "overbought": 60},
        "quote_allocation": "1000",
        "stop_loss_pct": "0.3",
        "take_profit_pct": "0.5",
        **fields,
    }
    path = tmp_path / "bot.json"
    path.write_text(json.dumps(body))
    return path


def result_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def consistent(result: dict[str, Any]) -> None:
    """Figures that must agree with each other whatever the candles."""
    allocation = Decimal(result["allocation"])
    assert Decimal(result["net_pnl"]) == Decimal(result["final_equity"]) - allocation
    pnl = sum((Decimal(t["pnl"]) for t in result["trades"]), Decimal(0))
    assert pnl == Decimal(result["realized_pnl"])
    fees = sum((Decimal(t["fees"]) for t in result["trades"]), Decimal(0))
    assert fees == Decimal(result["trade_fees"])
    assert len(result["trades"]) == result["round_trips"] == result["wins"] + result["losses"]
    if result["open_position"] is None:
        assert Decimal(result["fees"]) == fees
        assert Decimal(result["realized_pnl"]) == Decimal(result["net_pnl"])
    for a, b in zip(result["trades"], result["trades"][1:], strict=False):
        assert a["closed_at"] <= b["opened_at"]


def test_every_figure_is_given_and_they_agree(tmp_path: Path) -> None:
    exchange_info = json.loads(
        (FIXTURES / "binance" / "rest_exchangeinfo_btcusdt.json").read_text()
    )
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(exchange_info["symbols"][0]))
    bot = str(bot_file(tmp_path))
    short = result_of(run(bot, str(RECORDED), "--rules", str(rules), "--json"))
    assert short["candles"] == 180 < short["warmup_candles"]
    assert short["decided_candles"] == short["round_trips"] == 0
    assert "warm-up" in short["warnings"][0]

    klines = tmp_path / "BTCUSDT-1m.csv"
    write_file(klines, 3000, 60_000, seed=5)
    result = result_of(run(bot, str(klines), "--rules", str(rules), "--json"))
    assert result["candles"] == 3000
    assert result["decided_candles"] == 3000 - result["warmup_candles"] + 1
    assert result["round_trips"] >= 10 and result["warnings"] == []
    for key in (
        "net_pnl_pct", "win_rate_pct", "profit_factor", "expectancy", "max_drawdown",
        "sharpe", "sortino", "exposure_pct", "fees", "buy_and_hold_pct", "equity_curve",
    ):  # fmt: skip
        assert key in result
    assert result["equity_curve"][0][1] > 0
    consistent(result)

    table = run(bot, str(klines), "--rules", str(rules))
    assert table.returncode == 0, table.stderr
    assert "net PnL" in table.stdout and "Sortino" in table.stdout


def test_every_format_of_the_same_candles_gives_the_same_result(tmp_path: Path) -> None:
    csv12 = tmp_path / "k12.csv"
    write_file(csv12, 2000, 60_000, seed=3)
    rows = [line.split(",") for line in csv12.read_text().splitlines()]
    csv6 = tmp_path / "k6.csv"
    csv6.write_text("".join(",".join(r[:6]) + "\n" for r in rows))
    js = tmp_path / "k.json"
    js.write_text(json.dumps([[int(r[0]), *(float(x) for x in r[1:6])] for r in rows]))
    bot = str(bot_file(tmp_path))
    results = [
        result_of(run(bot, str(p), "--json", "--fee-asset", "base")) for p in (csv12, csv6, js)
    ]
    for r in results:
        consistent(r)
        r.pop("bot")
    assert results[0]["round_trips"] >= 10
    assert results[0] == results[1] == results[2]
    assert any(Decimal(t["dust"]) > 0 for t in results[0]["trades"])  # base commission


@pytest.mark.parametrize(
    ("fault", "line", "words"),
    [("duplicate", 7, "duplicate"), ("gap", 12, "gap of 1 1m"), ("older", 30, "out of order")],
)
def test_a_bad_file_is_refused_with_its_first_offending_line(
    tmp_path: Path, fault: str, line: int, words: str
) -> None:
    rows = RECORDED.read_text().splitlines(keepends=True)
    i = line - 1
    if fault == "duplicate":
        rows[i] = rows[i - 1]
    elif fault == "gap":
        del rows[i]
    else:
        rows[i] = rows[i - 2]
    bad = tmp_path / "BTCUSDT-1m.csv"
    bad.write_text("".join(rows))
    proc = run(str(bot_file(tmp_path)), str(bad), "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert f"BTCUSDT-1m.csv:{line}: {words}" in proc.stderr


@pytest.mark.parametrize(
    "fields",
    [
        {"strategy": "no_such_strategy"},
        {"params": {"period": 5, "bogus": 1}},
        {"params": {"period": -3}},
        {"sizing": {"mode": "risk", "risk_pct": "1"}, "stop_loss_pct": None},
    ],
)
def test_an_invalid_config_is_refused_as_the_api_refuses_it(
    tmp_path: Path, fields: dict[str, Any]
) -> None:
    path = bot_file(tmp_path, **fields)
    with pytest.raises(ValidationError) as err:
        BotConfig.model_validate(json.loads(path.read_text()))
    api = "; ".join(f"{e['field']}: {e['message']}" for e in field_errors(err.value))
    proc = run(str(path), str(RECORDED))
    assert proc.returncode == 2
    assert api in proc.stderr
