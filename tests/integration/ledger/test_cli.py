"""``botfleet trades --csv`` against a real ``botfleet api`` process over the ledger:
the file it writes is the API's CSV, byte for byte; the table shows the newest fill."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from services.ledger.migrations import migrate
from services.ledger.writer import Batch, LedgerWriter
from shared.ledger.engine import create_engine
from tests.integration.api.conftest import AUTH, TOKEN
from tests.integration.ledger.helpers import report
from tests.support.processes import BotfleetProcess, base_env
from tests.support.redis_server import free_port


async def seed(url: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    batch = Batch()
    for n in range(120):
        batch.add_report(report(n, bot=("bot-a", "bot-b")[n % 2], fills=2), f"{n}-0")
    await LedgerWriter(engine).write(batch)
    await engine.dispose()


def test_trades_csv_from_the_cli_equals_the_api(
    tmp_path: Path, clean_redis_url: str, processes: list[Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    asyncio.run(seed(url))

    port = free_port()
    env = {
        "BOTFLEET_REDIS_URL": clean_redis_url,
        "BOTFLEET_API_TOKEN": TOKEN,
        "BOTFLEET_LEDGER_DATABASE_URL": url,
    }
    api = BotfleetProcess(["api", "--port", str(port)], tmp_path / "api.log", env).start()
    processes.append(api)
    base = f"http://127.0.0.1:{port}"
    api.wait_http(base + "/healthz")
    client_env = base_env({"BOTFLEET_API_URL": base, "BOTFLEET_API_TOKEN": TOKEN})

    out = tmp_path / "bot-a.csv"
    done = subprocess.run(
        [sys.executable, "-m", "services", "trades", "--csv", "--bot", "bot-a", "-o", str(out)],
        env=client_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = httpx.get(
        base + "/api/v1/trades", params={"bot_id": "bot-a", "format": "csv"}, headers=AUTH
    ).text
    assert out.read_text() == expected
    assert len(expected.splitlines()) == 1 + 120  # header, 60 reports of two fills

    table = subprocess.run(
        [sys.executable, "-m", "services", "trades", "--limit", "3", "--side", "sell"],
        env={**client_env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "bot-b" in table.stdout and "SELL" in table.stdout and "more: --cursor" in table.stdout
