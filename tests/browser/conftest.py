"""Headless Chromium (Debian's, driven by Playwright) for the dashboard's tests.

``chart_bundle`` builds the vendored browser libraries when missing. ``open_browser``
gives a :class:`Browser` whose pages fail the test on any console error, uncaught
exception, failed request or HTTP error answer (except those a test expects, e.g. the
401 of a wrong token), and whose screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.api.controllers.dashboard import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
VENDORED = (
    STATIC_DIR / "vendor" / "lightweight-charts.standalone.production.js",
    STATIC_DIR / "vendor" / "swagger-ui" / "swagger-ui-bundle.js",
)


@pytest.fixture(scope="session")
def chart_bundle() -> Path:
    """The vendored browser libraries (lightweight-charts, Swagger UI), built from the
    npm registry when missing."""
    if not all(p.exists() for p in VENDORED):
        subprocess.run(
            ["bash", str(ROOT / "deploy" / "build-dashboard.sh")], check=True, timeout=300
        )
    return VENDORED[0]


class Browser:
    """One Chromium; every page it opens is watched for problems."""

    def __init__(self, pw: Any, base_url: str) -> None:
        assert shutil.which("chromium") == CHROMIUM, (
            "install Debian's chromium (deploy/test-prereqs.sh)"
        )
        self.base_url = base_url
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.problems: list[str] = []
        self.expected: list[re.Pattern[str]] = []
        self.requests: list[str] = []
        self.pages: list[Any] = []

    def expect_problem(self, pattern: str) -> None:
        """A problem matching ``pattern`` (searched in the answer's and the console's
        text, e.g. ``\\b401\\b``) is part of the test."""
        self.expected.append(re.compile(pattern))

    def _problem(self, text: str) -> None:
        if not any(p.search(text) for p in self.expected):
            self.problems.append(text)

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        # Leaving, reloading or closing a page aborts its calls in flight (the live feed,
        # a periodic refresh): the browser's doing, not an answer of the API.
        if "ERR_ABORTED" in failure and "/api/v1/" in request.url:
            return
        self._problem(f"request failed: {request.method} {request.url} {failure}")

    def new_page(self, width: int = 1400, height: int = 1100) -> Any:
        page = self.browser.new_page(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        page.on("pageerror", lambda exc: self._problem(f"uncaught: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self._problem(f"console {msg.type}: {msg.text} {msg.location}")
                if msg.type == "error"
                else None
            ),
        )
        page.on("requestfailed", self._failed)
        page.on("request", lambda request: self.requests.append(request.url))
        page.on(
            "response",
            lambda response: (
                self._problem(f"{response.status} {response.url}")
                if response.status >= 400
                else None
            ),
        )
        self.pages.append(page)
        return page

    def screenshot(self, page: Any, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.browser.close()

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)
        foreign = [u for u in self.requests if not u.startswith((self.base_url, "blob:", "data:"))]
        assert not foreign, f"requests outside the API (a CDN?): {foreign}"


@pytest.fixture
def open_browser(chart_bundle: Path) -> Iterator[Any]:
    """``open_browser(base_url)`` -> a :class:`Browser`; checked and closed after the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        opened: list[Browser] = []

        def factory(base_url: str) -> Browser:
            browser = Browser(pw, base_url)
            opened.append(browser)
            return browser

        yield factory
        for browser in opened:
            browser.close()
        for browser in opened:
            browser.check()
