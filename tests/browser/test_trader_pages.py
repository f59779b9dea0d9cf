"""What a trader does on each page of the dashboard, in headless Chromium, against the
whole demo fleet (``botfleet dev``: simulator, ingestion, runner, gateway, ledger, API):
the portfolio overview, a bot's page (chart, lines, indicators, round trips, decisions,
stop with confirmation, settings edited in place with the API's reasons), the trades
page with its filters and CSV export, the events feed, a phone-width screen, a wrong
token and logging out, and the API's documentation served without a CDN. Every page
fails its test on a console error or a failed request (``tests/browser/conftest.py``);
screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.fleet import DevFleet

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE = 390


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevFleet]:
    fleet = DevFleet(tmp_path_factory.mktemp("pages-fleet"), demo=True, runners=1)
    try:
        fleet.start()
        fleet.wait_for_bots(3)
        fleet.wait_for_trades(min_trades=2, timeout=120)
        yield fleet
    except BaseException:
        print(f"\n===== botfleet dev log =====\n{fleet.log_text()[-8000:]}")
        raise
    finally:
        if fleet.process.alive():
            fleet.interrupt()


def rsi_bot(fleet: DevFleet) -> dict[str, Any]:
    return next(b for b in fleet.bots() if b["strategy"] == "rsi")


def test_the_overview_shows_the_portfolio_its_pnl_by_day_and_exposure(
    fleet: DevFleet, open_browser: Any
) -> None:
    from playwright.sync_api import expect

    browser = open_browser(fleet.api_url)
    page = browser.new_page()
    try:
        page.goto(f"{fleet.api_url}/?token={fleet.token}")
        expect(page.locator("#summary .card")).to_have_count(10, timeout=20_000)
        expect(page.locator("#nav a.active")).to_have_text("Overview")
        expect(page.locator("#portfolio-equity:not([data-points='0'])")).to_have_count(
            1, timeout=60_000
        )
        expect(page.locator("#pnl-by-day:not([data-days='0'])")).to_have_count(1)
        # Exposure: one row per symbol the demo bots trade.
        expect(page.locator("#exposure tbody tr")).to_have_count(3)
        expect(page.locator("#exposure tbody")).to_contain_text("BTCUSDT")
        expect(page.locator("#health tbody")).to_contain_text("gateway")
    finally:
        browser.screenshot(page, "overview")


def test_a_bots_page_charts_trades_and_explains_its_decisions(
    fleet: DevFleet, open_browser: Any
) -> None:
    from playwright.sync_api import expect

    bot = rsi_bot(fleet)
    browser = open_browser(fleet.api_url)
    browser.expect_problem(r"\b400\b.*/api/v1/bots/")  # the refused edit below
    page = browser.new_page()
    try:
        page.goto(f"{fleet.api_url}/?token={fleet.token}#/bots")
        # The table filters and sorts; a click on a row opens the bot's page.
        table = page.locator("#bots")
        expect(table.locator("tbody tr")).to_have_count(3, timeout=20_000)
        page.locator("#bots-filter").fill("rsi")
        expect(table.locator("tbody tr:not([hidden])")).to_have_count(1)
        page.locator("#bots-filter").fill("")
        table.locator("th", has_text="Name").click()
        names = table.locator("tbody tr td:first-child").all_inner_texts()
        assert names == sorted(names), names
        table.locator("th", has_text="Name").click()
        names = table.locator("tbody tr td:first-child").all_inner_texts()
        assert names == sorted(names, reverse=True), names
        # Running bots offer Stop, not Start.
        expect(table.locator("button[data-action=start]")).to_have_count(0)
        expect(table.locator("button[data-action=stop]")).to_have_count(3)
        table.locator("tbody tr", has_text=bot["name"]).locator("td").nth(2).click()
        assert page.url.endswith(f"#/bots/{bot['id']}")
        expect(page.locator("#bot-title")).to_contain_text(bot["name"])

        # Chart: fills as markers, the RSI in a pane of its own.
        chart = page.locator("#chart")
        expect(page.locator("#chart[data-markers]:not([data-markers='0'])")).to_have_count(
            1, timeout=30_000
        )
        expect(chart).to_have_attribute("data-indicators", "1")
        expect(page.locator("#pane")).to_be_visible()
        expect(page.locator("#pane-title")).to_contain_text("RSI(5)")

        # Round trips with their exit reasons.
        trips = page.locator("#round-trips tbody tr")
        expect(trips.first).to_be_visible(timeout=30_000)
        reasons = page.locator("#round-trips tbody tr td:last-child").all_inner_texts()
        assert all(r and r != "\u2013" for r in reasons), reasons

        # Decisions: holds hidden until asked for, prices to the tick (0.01 on
        # BTCUSDT), times in exchange time (the simulator's clock runs 120x ours).
        decisions = page.locator("#decisions tbody tr")
        expect(decisions.first).to_be_visible(timeout=30_000)
        expect(page.locator("#decisions tbody tr.kind-hold")).to_have_count(0)
        expect(page.locator("#decisions-note")).to_contain_text("holds hidden")
        page.locator("#show-holds").check()
        expect(page.locator("#decisions tbody tr.kind-hold").first).to_be_visible()
        prices = [
            p for p in page.locator("#decisions tbody tr td:nth-child(4)").all_inner_texts() if p
        ]
        assert prices and all(re.fullmatch(r"[\d,]+\.\d\d", p) for p in prices), prices[:5]
        newest = page.locator("#decisions tbody tr td:first-child").first.inner_text()
        shown = datetime.strptime(newest, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        last_candle = (
            fleet.client()
            .get("/api/v1/market/BTCUSDT/candles", params={"interval": "1m", "limit": 1})
            .json()[-1]["close_time"]
        )
        gap_s = abs(shown.timestamp() - last_candle / 1000)
        assert gap_s < 15 * 60, (newest, last_candle)  # wall-clock time would be hours off
        browser.screenshot(page, "bot-page")

        # Stop needs a confirmation: dismissed, nothing happens; accepted, it stops.
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.locator("#bot-actions button[data-action=stop]").click()
        expect(page.locator("#bot-status")).to_have_text("running")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#bot-actions button[data-action=stop]").click()
        expect(page.locator("#bot-status")).to_have_text("stopped", timeout=60_000)
        expect(page.locator("#bot-actions button[data-action=start]")).to_have_count(1)
        expect(page.locator("#bot-actions button[data-action=stop]")).to_have_count(0)

        # Settings edited in place: the API's reason lands on the field.
        page.locator("#bot-actions button[data-action=edit]").click()
        form = page.locator("#edit-form")
        form.locator("input[name=quote_allocation]").fill("1e300")
        form.locator("button[type=submit]").click()
        expect(page.locator("#edit-error")).to_contain_text("quote_allocation")
        expect(form.locator("input[name=quote_allocation].invalid")).to_have_count(1)
        form.locator("input[name=quote_allocation]").fill("900")
        form.locator("input[name=take_profit_pct]").fill("0.5")
        form.locator("button[type=submit]").click()
        expect(form).to_be_hidden(timeout=10_000)
        saved = fleet.client().get(f"/api/v1/bots/{bot['id']}").json()["config"]
        assert saved["quote_allocation"] == "900" and saved["take_profit_pct"] == "0.5", saved
        expect(page.locator("#bot-cards")).to_contain_text("900.00")
    finally:
        browser.screenshot(page, "bot-page-after")


def test_the_trades_page_filters_and_exports_csv(fleet: DevFleet, open_browser: Any) -> None:
    from playwright.sync_api import expect

    bot = rsi_bot(fleet)
    browser = open_browser(fleet.api_url)
    page = browser.new_page()
    try:
        page.goto(f"{fleet.api_url}/?token={fleet.token}#/trades")
        rows = page.locator("#trades tbody tr")
        expect(rows.first).to_be_visible(timeout=30_000)
        form = page.locator("#trades-form")
        form.locator("select[name=side]").select_option("SELL")
        form.locator("select[name=bot_id]").select_option(bot["id"])
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        form.locator("input[name=from]").fill("2020-01-01")
        form.locator("button[type=submit]").click()
        expect(page.locator("#trades tbody tr td:nth-child(4)", has_text="BUY")).to_have_count(0)
        expect(rows.first).to_be_visible()
        bots = set(page.locator("#trades tbody tr td:nth-child(2)").all_inner_texts())
        assert bots == {bot["name"]}, bots
        shown = rows.count()
        with page.expect_download() as info:
            page.locator("#trades-csv").click()
        download = info.value
        assert download.suggested_filename == "trades.csv"
        lines = Path(download.path()).read_text().strip().splitlines()
        assert lines[0].startswith("id,ts,bot_id,"), lines[0]
        assert len(lines) - 1 >= shown and all(",SELL," in line for line in lines[1:]), lines[:3]
        # A day range that holds nothing shows nothing.
        form.locator("input[name=from]").fill("2020-01-01")
        form.locator("input[name=to]").fill("2020-01-02")
        form.locator("button[type=submit]").click()
        expect(rows).to_have_count(0)
        expect(page.locator("#trades-note")).to_contain_text("No fill")
        assert today  # the page's own range (today) was exercised above through "from"
    finally:
        browser.screenshot(page, "trades")


def test_the_events_page_lists_the_fleets_events(fleet: DevFleet, open_browser: Any) -> None:
    from playwright.sync_api import expect

    browser = open_browser(fleet.api_url)
    page = browser.new_page()
    try:
        page.goto(f"{fleet.api_url}/?token={fleet.token}#/events")
        rows = page.locator("#events tbody tr")
        expect(rows.first).to_be_visible(timeout=30_000)
        total = rows.count()
        page.locator("#events-filter").fill("no event says this 1f9a")
        expect(page.locator("#events tbody tr:not([hidden])")).to_have_count(0)
        page.locator("#events-filter").fill("")
        expect(page.locator("#events tbody tr:not([hidden])")).to_have_count(total)
    finally:
        browser.screenshot(page, "events")


def test_every_page_fits_a_phone(fleet: DevFleet, open_browser: Any) -> None:
    from playwright.sync_api import expect

    bot = rsi_bot(fleet)
    browser = open_browser(fleet.api_url)
    page = browser.new_page(width=PHONE, height=844)
    page.goto(f"{fleet.api_url}/?token={fleet.token}")
    pages = {
        "overview": ("#/", "#exposure tbody tr"),
        "bots": ("#/bots", "#bots tbody tr"),
        "bot": (f"#/bots/{bot['id']}", "#decisions tbody tr"),
        "trades": ("#/trades", "#trades tbody tr"),
        "events": ("#/events", "#events tbody tr"),
    }
    for name, (route, loaded) in pages.items():
        page.goto(f"{fleet.api_url}/{route}")
        expect(page.locator(loaded).first).to_be_visible(timeout=30_000)
        width = page.evaluate("document.documentElement.scrollWidth")
        browser.screenshot(page, f"phone-{name}")
        assert width <= PHONE, f"{name}: the page is {width} px wide at {PHONE} px"


def test_a_wrong_token_asks_again_and_logout_forgets_the_token(
    fleet: DevFleet, open_browser: Any
) -> None:
    from playwright.sync_api import expect

    browser = open_browser(fleet.api_url)
    browser.expect_problem(r"\b401\b")  # the wrong token's answers are the point
    page = browser.new_page()
    try:
        page.goto(f"{fleet.api_url}/?token=not-the-right-token-at-all")
        expect(page.locator("#login")).to_be_visible(timeout=20_000)
        expect(page.locator("#login-message")).to_contain_text("refused")
        expect(page.locator("#app")).to_be_hidden()
        page.locator("#token-input").fill(fleet.token)
        page.locator("#login-form button[type=submit]").click()
        expect(page.locator("#summary .card").first).to_be_visible(timeout=20_000)
        expect(page.locator("#login")).to_be_hidden()
        page.locator("#logout-btn").click()
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#login-message")).to_contain_text("Logged out")
        assert page.evaluate("sessionStorage.getItem('botfleet.token')") is None
        page.reload()
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
    finally:
        browser.screenshot(page, "login")


def test_the_api_documentation_loads_without_a_cdn(fleet: DevFleet, open_browser: Any) -> None:
    from playwright.sync_api import expect

    browser = open_browser(fleet.api_url)
    page = browser.new_page()
    for path in ("/schema", "/schema/redoc"):
        page.goto(f"{fleet.api_url}{path}")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("botfleet", timeout=20_000)
    assert page.url.endswith("/schema/swagger")
    favicon = page.request.get(f"{fleet.api_url}/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"] == "image/svg+xml"
    browser.screenshot(page, "schema")
