"""The dashboard in headless Chromium (Debian's chromium driven by Playwright) against the
whole fleet (``botfleet dev``): create a bot through the form, start it, and see its
first trade appear as a marker on its candlestick chart. The screenshot is kept in
``test-artifacts/``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.api.controllers.dashboard import STATIC_DIR
from tests.support.fleet import DevFleet

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def chart_bundle() -> Path:
    """The vendored lightweight-charts bundle, built from the npm registry when missing."""
    bundle = STATIC_DIR / "vendor" / "lightweight-charts.standalone.production.js"
    if not bundle.exists():
        subprocess.run(
            ["bash", str(ROOT / "deploy" / "build-dashboard.sh")], check=True, timeout=300
        )
    return bundle


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
    chart_bundle: Path, fleet: DevFleet
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert shutil.which("chromium") == CHROMIUM, (
        "install Debian's chromium (deploy/test-prereqs.sh)"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{fleet.api_url}/?token={fleet.token}")
            assert "token=" not in page.url  # the token leaves the address bar
            form = page.locator("#create-form")
            expect(form.locator("select[name=symbol] option[value=BTCUSDT]")).to_have_count(
                1, timeout=30_000
            )
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
            row = page.locator("#bots tbody tr", has_text="browser-rsi")
            expect(row).to_have_count(1, timeout=15_000)
            expect(page.locator("#create-error")).to_have_text("")
            row.locator("button[data-action=start]").click()
            expect(row.locator("td").nth(3)).to_have_text("running", timeout=60_000)
            # The first fill appears as a marker on the bot's chart (updated by the feed).
            expect(page.locator("#chart[data-markers]:not([data-markers='0'])")).to_have_count(
                1, timeout=120_000
            )
            expect(page.locator("#health tbody")).to_contain_text("gateway")
        finally:
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            browser.close()
    assert not errors, errors
