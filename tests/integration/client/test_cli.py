"""The ``botfleet`` client against a real ``botfleet api`` process and redis-server:
the API's reasons on errors, ``--json`` on lists, names where ids go, ``bots logs``,
``strategies``, ``risk show|set`` and help that says what a flag takes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared import keys
from tests.integration.api.conftest import TOKEN, rules
from tests.support.processes import BotfleetProcess, base_env
from tests.support.redis_server import free_port


@pytest.fixture
def cli_env(
    tmp_path: Path, clean_redis_url: str, processes: list[Any], sync_redis_client: Any
) -> dict[str, str]:
    sync_redis_client.hset(keys.EXCHANGE_SYMBOLS, mapping={"BTCUSDT": rules("BTCUSDT")})
    port = free_port()
    api = BotfleetProcess(
        ["api", "--port", str(port)],
        tmp_path / "api.log",
        {"BOTFLEET_REDIS_URL": clean_redis_url, "BOTFLEET_API_TOKEN": TOKEN},
    ).start()
    processes.append(api)
    base = f"http://127.0.0.1:{port}"
    api.wait_http(base + "/healthz")
    return base_env({"BOTFLEET_API_URL": base, "BOTFLEET_API_TOKEN": TOKEN, "COLUMNS": "80"})


def botfleet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def ok(env: dict[str, str], *args: str) -> str:
    done = botfleet(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


CREATE = ("bots", "create", "--symbol", "BTCUSDT", "--strategy", "rsi", "--quote", "500")


def test_errors_show_the_apis_reasons(cli_env: dict[str, str]) -> None:
    done = botfleet(cli_env, "bots", "create", "--symbol", "BTCUSDT", "--strategy", "macd",
                    "--quote", "500")  # fmt: skip
    assert done.returncode == 1
    assert "strategy: unknown strategy 'macd'; known: bollinger" in done.stderr
    assert "Validation failed" not in done.stderr
    first = botfleet(cli_env, *CREATE, "--name", "x", "--json")
    assert first.returncode == 0, first.stderr
    again = botfleet(cli_env, *CREATE, "--name", "X")
    assert again.returncode == 1 and "a bot named 'X' exists already" in again.stderr
    missing = botfleet(cli_env, "bots", "show", "nobody")
    assert missing.returncode == 1 and "no bot with the id or name 'nobody'" in missing.stderr


def test_names_work_where_ids_do_and_lists_print_json(
    cli_env: dict[str, str], sync_redis_client: Any
) -> None:
    created = json.loads(ok(cli_env, *CREATE, "--name", "Alpha One", "--json"))
    bot_id = created["id"]
    sync_redis_client.hset(  # as a runner writes them
        keys.bot_stats(bot_id), mapping={"realized_pnl": "1.5", "applied_intents": '["i1"]'}
    )
    shown = ok({**cli_env, "COLUMNS": "200"}, "bots", "show", "Alpha One")
    assert "stats.realized_pnl" in shown and "applied_intents" not in shown
    listed = json.loads(ok(cli_env, "bots", "ls", "--json"))
    assert [b["id"] for b in listed["items"]] == [bot_id] and listed["total"] == 1
    assert json.loads(ok(cli_env, "bots", "show", "alpha one", "--json"))["id"] == bot_id
    assert json.loads(ok(cli_env, "bots", "logs", "Alpha One", "--json")) == []
    assert bot_id in ok(cli_env, "bots", "ls"), "the id is never cut at 80 columns"
    assert f"removed {bot_id}" in ok(cli_env, "bots", "rm", "Alpha One")
    assert json.loads(ok(cli_env, "bots", "ls", "--json"))["items"] == []


def test_strategies_and_risk_show_and_set(cli_env: dict[str, str]) -> None:
    names = {s["name"] for s in json.loads(ok(cli_env, "strategies", "--json"))}
    assert {"rsi", "ema_cross", "bollinger"} <= names
    assert "rsi" in ok(cli_env, "strategies")
    shown = json.loads(ok(cli_env, "risk", "show", "--json"))
    assert shown["halted"] is False
    changed = json.loads(
        ok(cli_env, "risk", "set", "max_open_positions=3", "max_exposure_quote=5000", "--json")
    )
    assert changed["limits"]["max_open_positions"] == "3"
    assert changed["limits"]["max_exposure_quote"] == "5000"
    kept = json.loads(ok(cli_env, "risk", "set", "max_open_positions=", "--json"))
    assert kept["limits"].get("max_open_positions", "") == ""
    assert kept["limits"]["max_exposure_quote"] == "5000"
    assert "max_exposure_quote = 5000" in ok(cli_env, "risk", "show")


def test_help_says_what_each_flag_takes(cli_env: dict[str, str]) -> None:
    text = ok({**cli_env, "COLUMNS": "200"}, "bots", "create", "--help")
    assert "amount of the quote asset" in text
    assert "logs" in ok({**cli_env, "COLUMNS": "200"}, "bots", "--help")


def test_health_prints_json_and_exits_1_while_services_are_missing(
    cli_env: dict[str, str],
) -> None:
    done = botfleet(cli_env, "health", "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] != "ok" and "runner" in report["missing"]
