"""The dashboard's trade list and equity curve read the ledger: a real ``botfleet api``
process over a seeded ledger, the page in headless Chromium; the trades page lists a
bot's fills (from ``/api/v1/trades``) and the bot's page its daily equity line
(``/api/v1/equity``)."""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis

from services.ledger.migrations import migrate
from services.ledger.writer import Batch, LedgerWriter
from shared import keys
from shared.ledger.engine import create_engine
from tests.integration.api.conftest import AUTH, TOKEN, bot_config, rules
from tests.integration.ledger.helpers import report
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"


async def seed(url: str, bot_id: str) -> None:
    engine = create_engine(url)
    await migrate(engine)
    writer = LedgerWriter(engine)
    batch = Batch()
    for n in range(12):
        batch.add_report(report(n, bot=bot_id), f"{n}-0")
    await writer.write(batch)
    await writer.record_equity(
        [
            {"bot_id": bot_id, "day": f"2024-01-0{d}", "equity": Decimal(1000 + d),
             "realized_pnl": Decimal(d), "total_pnl": Decimal(d), "fees": Decimal("0.1"),
             "trades": d, "taken_at": 1}
            for d in range(1, 6)
        ]
    )  # fmt: skip
    await engine.dispose()


def test_the_bot_detail_lists_ledger_fills_and_draws_the_equity_curve(
    tmp_path: Path, clean_redis_url: str, processes: list[Any]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    if shutil.which("chromium") != CHROMIUM:
        pytest.fail("install Debian's chromium (deploy/test-prereqs.sh)")
    r = sync_redis.Redis.from_url(clean_redis_url)
    r.hset(keys.EXCHANGE_SYMBOLS, mapping={"BTCUSDT": rules("BTCUSDT")})
    r.close()
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    port = free_port()
    api = BotfleetProcess(
        ["api", "--port", str(port)],
        tmp_path / "api.log",
        {
            "BOTFLEET_REDIS_URL": clean_redis_url,
            "BOTFLEET_API_TOKEN": TOKEN,
            "BOTFLEET_LEDGER_DATABASE_URL": url,
        },
    ).start()
    processes.append(api)
    base = f"http://127.0.0.1:{port}"
    api.wait_http(base + "/healthz")
    created = httpx.post(base + "/api/v1/bots", json=bot_config(name="ledger-bot"), headers=AUTH)
    assert created.status_code == 201, created.text
    bot_id = created.json()["id"]
    asyncio.run(seed(url, bot_id))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{base}/?token={TOKEN}#/trades")
            page.locator("#trades-form select[name=bot_id]").select_option(bot_id)
            page.locator("#trades-form button[type=submit]").click()
            expect(page.locator("#trades[data-rows='12']")).to_have_count(1, timeout=20_000)
            expect(page.locator("#trades tbody tr")).to_have_count(12)
            expect(page.locator("#trades tbody")).to_contain_text("43,210.")
            page.goto(f"{base}/#/bots/{bot_id}")
            expect(page.locator("#bot-title")).to_contain_text("ledger-bot", timeout=20_000)
            expect(page.locator("#equity-note")).to_have_text("5 days", timeout=20_000)
        finally:
            browser.close()
    assert not errors, errors
