"""The whole fleet for end-to-end tests: ``botfleet dev`` as one real process.

``DevFleet`` starts the supervisor with its own data directory (private redis-server
with AOF, token, logs) and free ports for the API, the simulator and Redis, so tests
and a developer's ``make run`` never collide. It exposes the API URL and token, an
authenticated ``httpx.Client`` and the Redis URL, and helpers to wait for the demo
bots and their first trades. Reuse it through the ``dev_fleet`` fixture of
``tests/e2e/conftest.py`` (one fleet per module) or directly::

    with DevFleet(tmp_path).start() as fleet:
        fleet.wait_for_trades(min_trades=1)
        page = fleet.client().get("/api/v1/bots").json()
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port


class DevFleet:
    def __init__(
        self,
        workdir: Path,
        *,
        sim_speed: float = 120.0,
        runners: int = 2,
        demo: bool = True,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "botfleet-data"
        self.api_port = free_port()
        self.sim_port = free_port()
        self.redis_port = free_port()
        args = [
            "dev",
            "--data-dir", str(self.data_dir),
            "--api-port", str(self.api_port),
            "--sim-port", str(self.sim_port),
            "--redis-port", str(self.redis_port),
            "--sim-speed", f"{sim_speed:g}",
            "--runners", str(runners),
            "--no-color",
        ]  # fmt: skip
        if not demo:
            args.append("--no-demo")
        args += extra_args or []
        self.process = BotfleetProcess(args, workdir / "botfleet-dev.log", env=env, cwd=workdir)
        self._client: httpx.Client | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> DevFleet:
        self.process.start()
        self.process.wait_http(f"{self.api_url}/healthz", timeout=timeout)
        return self

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C: the exit status of ``botfleet dev`` after its orderly shutdown."""
        self.close_client()
        return self.process.interrupt(timeout=timeout)

    def kill(self) -> None:
        self.close_client()
        self.process.kill()

    def __enter__(self) -> DevFleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.alive():
            self.kill()

    # --- access ------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def token(self) -> str:
        return (self.data_dir / "api-token").read_text().strip()

    def client(self) -> httpx.Client:
        """An httpx client on the API with the bearer token (closed by the fleet)."""
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.api_url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10.0,
            )
        return self._client

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def log_text(self) -> str:
        return self.process.log_text()

    # --- waiting -----------------------------------------------------------------------
    def bots(self) -> list[dict[str, Any]]:
        response = self.client().get("/api/v1/bots", params={"limit": 1000})
        response.raise_for_status()
        return list(response.json()["items"])

    def trades(self, bot_id: str) -> list[dict[str, Any]]:
        response = self.client().get(f"/api/v1/bots/{bot_id}/trades", params={"limit": 1000})
        response.raise_for_status()
        return list(response.json())

    def wait_for_bots(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The bots once ``count`` exist and all are running (desired and status)."""
        found: list[dict[str, Any]] = []

        def ready() -> bool:
            nonlocal found
            found = self.bots()
            return len(found) >= count and all(
                b["desired"] == "running" and b["status"] == "running" for b in found
            )

        self.process.wait_for(ready, timeout, f"{count} running bots")
        return found

    def wait_for_trades(
        self, min_trades: int = 1, timeout: float = 90.0
    ) -> dict[str, list[dict[str, Any]]]:
        """Trades per bot id once the fleet has closed at least ``min_trades`` round trips."""
        by_bot: dict[str, list[dict[str, Any]]] = {}

        def enough() -> bool:
            nonlocal by_bot
            by_bot = {b["id"]: self.trades(b["id"]) for b in self.bots()}
            return sum(len(t) for t in by_bot.values()) >= min_trades

        deadline = time.monotonic() + timeout
        self.process.wait_for(enough, max(1.0, deadline - time.monotonic()), "demo trades")
        return by_bot
