"""The backtest page in headless Chromium against the whole fleet (``botfleet dev``, which
runs a backtest worker): start a job from the form, follow it to done, and see its
figures, its round trips as markers on the candle chart, its equity curve and its
trades, equal to what the API answers. The screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import DevFleet

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevFleet]:
    fleet = DevFleet(tmp_path_factory.mktemp("backtest-fleet"), demo=False, runners=1)
    try:
        fleet.start()
        yield fleet
    except BaseException:
        print(f"\n===== botfleet dev log =====\n{fleet.log_text()[-8000:]}")
        raise
    finally:
        if fleet.process.alive():
            fleet.interrupt()


def day(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def test_the_backtest_page_runs_a_job_and_charts_its_trades(
    chart_bundle: Path, fleet: DevFleet, open_browser: Any
) -> None:
    from playwright.sync_api import expect

    browser = open_browser(fleet.api_url)
    page = browser.new_page()
    now = time.time() * 1000
    try:
        page.goto(f"{fleet.api_url}/static/backtest.html?token={fleet.token}")
        assert "token=" not in page.url  # the token leaves the address bar
        form = page.locator("#bt-form")
        expect(form.locator("select[name=strategy] option[value=rsi]")).to_have_count(
            1, timeout=30_000
        )
        form.locator("input[name=name]").fill("page-rsi")
        form.locator("select[name=symbol]").select_option("BTCUSDT")
        form.locator("select[name=interval]").select_option("1h")
        form.locator("select[name=strategy]").select_option("rsi")
        form.locator("input[name=params]").fill('{"period": 5, "oversold": 40, "overbought": 60}')
        form.locator("input[name=stop_loss_pct]").fill("1")
        form.locator("input[name=from]").fill(day(now - 40 * DAY_MS))
        form.locator("input[name=to]").fill(day(now - 5 * DAY_MS))
        form.locator("button[type=submit]").click()

        expect(page.locator("#bt-status")).to_have_text("done", timeout=120_000)
        job_id = page.evaluate("new URL(location.href).searchParams.get('job')")
        result = fleet.client().get(f"/api/v1/backtests/{job_id}/result").json()
        trips = result["round_trips"]
        assert trips > 0
        expect(page.locator("#bt-figures [data-figure=round_trips]")).to_have_text(str(trips))
        expect(page.locator("#bt-trades")).to_have_attribute("data-rows", str(trips))
        expect(page.locator("#bt-chart")).to_have_attribute("data-markers", str(2 * trips))
        expect(page.locator("#bt-equity[data-points]:not([data-points='0'])")).to_have_count(1)
        expect(page.locator(f"#bt-jobs tr[data-job='{job_id}']")).to_contain_text("done")

        # A refused config shows the API's reason on the form, as the dashboard does.
        browser.expect_problem(r"\b400\b")
        form.locator("input[name=params]").fill('{"period": -3}')
        form.locator("button[type=submit]").click()
        expect(page.locator("#bt-form-errors")).to_contain_text("params")
    finally:
        browser.screenshot(page, "backtest")
