"""The dashboard in headless Chromium against the whole fleet (``botfleet dev``): create
a bot through the form, start it from its page, and see its first trade appear as a
marker on its candlestick chart. The screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import DevFleet

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevFleet]:
    fleet = DevFleet(tmp_path_factory.mktemp("dash-fleet"), demo=False, runners=1)
    try:
        fleet.start()
        yield fleet
    except BaseException:
        print(f"\n===== botfleet dev log =====\n{fleet.log_text()[-8000:]}")
        raise
    finally:
        if fleet.process.alive():
            fleet.interrupt()


def test_dashboard_creates_and_starts_a_bot_and_charts_its_first_trade(
    chart_bundle: Path, fleet: DevFleet, open_browser: Any
) -> None:
    from playwright.sync_api import expect

    browser = open_browser(fleet.api_url)
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        page.goto(f"{fleet.api_url}/?token={fleet.token}#/bots")
        assert "token=" not in page.url  # the token leaves the address bar
        form = page.locator("#create-form")
        # With no bot yet the form is open.
        expect(form.locator("select[name=symbol] option[value=BTCUSDT]")).to_have_count(
            1, timeout=30_000
        )
        expect(form).to_be_visible()
        form.locator("input[name=name]").fill("browser-rsi")
        form.locator("select[name=symbol]").select_option("BTCUSDT")
        form.locator("select[name=interval]").select_option("1m")
        form.locator("select[name=strategy]").select_option("rsi")
        form.locator("input[name='param:period']").fill("5")
        form.locator("input[name='param:oversold']").fill("40")
        form.locator("input[name='param:overbought']").fill("60")
        form.locator("select[name=sizing_mode]").select_option("percent_equity")
        form.locator("input[name=sizing_value]").fill("50")
        form.locator("input[name=stop_loss_pct]").fill("0.6")
        form.locator("input[name=take_profit_pct]").fill("0.4")
        form.locator("button[type=submit]").click()
        # The new bot's page opens; a stopped bot offers Start, not Stop.
        expect(page.locator("#bot-title")).to_contain_text("browser-rsi", timeout=15_000)
        expect(page.locator("#create-error")).to_have_text("")
        actions = page.locator("#bot-actions")
        expect(actions.locator("button[data-action=start]")).to_have_count(1)
        expect(actions.locator("button[data-action=stop]")).to_have_count(0)
        actions.locator("button[data-action=start]").click()
        expect(page.locator("#bot-status")).to_have_text("running", timeout=60_000)
        expect(actions.locator("button[data-action=start]")).to_have_count(0)
        expect(actions.locator("button[data-action=stop]")).to_have_count(1)
        # The first fill appears as a marker on the bot's chart (updated by the feed).
        expect(page.locator("#chart[data-markers]:not([data-markers='0'])")).to_have_count(
            1, timeout=120_000
        )
        page.locator("#nav a[data-page=overview]").click()
        expect(page.locator("#health tbody")).to_contain_text("gateway", timeout=15_000)
    finally:
        browser.screenshot(page, "dashboard")
