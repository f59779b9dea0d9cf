"""The exchange simulator as a real process, for tests of every service.

``start_sim(tmp_path, speed=..., extra_args=[...])`` runs ``botfleet exchange-sim`` on a
free port with the known key pair :data:`SIM_API_KEY` / :data:`SIM_API_SECRET` (and a
second pair of the same account, :data:`SIM_API_KEY_2` / :data:`SIM_API_SECRET_2`, for
tests that revoke one key) and waits until ``/api/v3/ping`` answers. :class:`SimClient` talks to its admin
endpoints (faults, order records) and exposes the URLs. Fixtures: ``sim`` (one
process per test module, speed 60) and ``sim_factory`` (start your own, with flags;
all stopped at teardown). Import them into a conftest or test module::

    from tests.support.sim import sim, sim_factory  # noqa: F401  (fixtures)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port

SIM_API_KEY = "simkey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
SIM_API_SECRET = "simsecret0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
SIM_API_KEY_2 = "simkey2abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV"
SIM_API_SECRET_2 = "simsecret2abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS"
SIM_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
DEFAULT_SPEED = 60.0


@dataclass
class SimClient:
    """A running simulator: its URLs, its process and its admin endpoints."""

    host: str
    port: int
    process: BotfleetProcess
    speed: float
    api_key: str = SIM_API_KEY
    api_secret: str = SIM_API_SECRET

    @property
    def rest_url(self) -> str:
        """Base URL; REST paths are ``/api/v3/...`` under it (BOTFLEET_BINANCE_REST_URL)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base of ``/ws/<stream>`` and ``/stream?streams=`` (BOTFLEET_BINANCE_WS_URL)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def ws_api_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws-api/v3"

    def env(self, *, second_key: bool = False) -> dict[str, str]:
        """Environment for a botfleet service that should talk to this simulator
        (``second_key``: sign with the account's second key pair)."""
        return {
            "BOTFLEET_BINANCE_ENV": "sim",
            "BOTFLEET_BINANCE_REST_URL": self.rest_url,
            "BOTFLEET_BINANCE_WS_URL": self.ws_url,
            "BOTFLEET_BINANCE_API_KEY": SIM_API_KEY_2 if second_key else self.api_key,
            "BOTFLEET_BINANCE_API_SECRET": SIM_API_SECRET_2 if second_key else self.api_secret,
        }

    def _get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(self.rest_url + path, params=params, timeout=10.0)
        resp.raise_for_status()
        return resp.json()

    # --- admin -----------------------------------------------------------------------------

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Merge faults: latency_ms, error_rate, order_unknown_rate, unknown_mode
        ("503"|"500"|"timeout"), timeout_s, drop_kline_rate, frozen (list of symbols,
        "*"), revoked_keys (API keys answered 401 -2015), and the one-shot actions
        rate_limit_s / ban_s (every REST request 429 / 418 for N wall seconds),
        clock_offset_ms (exchange clock shift; timestamps then checked against it only),
        half_open=True (every open WebSocket goes silent, not closed), disconnect_ws=True, server_shutdown=True (with an optional shutdown_grace_s:
        wall seconds from the notice to the close)."""
        resp = httpx.post(self.rest_url + "/sim/faults", json=faults, timeout=10.0)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def clear_faults(self) -> dict[str, Any]:
        resp = httpx.delete(self.rest_url + "/sim/faults", timeout=10.0)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/sim/faults")
        return result

    def revoke(self, *api_keys: str) -> None:
        """Every signed request with one of these keys answers 401 -2015 from now on."""
        self.set_faults(revoked_keys=list(api_keys))

    def freeze(self, *symbols: str) -> None:
        self.set_faults(frozen=list(symbols) or ["*"])

    def thaw(self) -> None:
        self.set_faults(frozen=[])

    def disconnect_ws(self) -> None:
        self.set_faults(disconnect_ws=True)

    def half_open(self) -> None:
        """Every WebSocket open now goes half-open: no frame, ping or pong, not closed."""
        self.set_faults(half_open=True)

    def clock_offset(self, offset_ms: int) -> None:
        """Shift the exchange clock; timestamps are then checked against it only."""
        self.set_faults(clock_offset_ms=offset_ms)

    def server_shutdown(self, grace_s: float | None = None) -> None:
        """Send ``serverShutdown`` to every connection open now and close those (only
        those) ``grace_s`` wall seconds later (default: the simulator's
        ``--shutdown-grace-s``, 3 s); they keep streaming until then."""
        if grace_s is None:
            self.set_faults(server_shutdown=True)
        else:
            self.set_faults(server_shutdown=True, shutdown_grace_s=grace_s)

    def orders(self) -> list[dict[str, Any]]:
        """Every order the simulator ever accepted (orderId, clientOrderId, symbol,
        side, type, status, origQty, executedQty, price, time), oldest first."""
        result: list[dict[str, Any]] = self._get("/sim/orders")
        return result

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        return [o for o in self.orders() if o["clientOrderId"] == client_order_id]

    def limits(self) -> dict[str, Any]:
        """What the simulator saw of the rate limits: ``weight_limit``,
        ``weight_per_minute`` (minute open ms -> weight served, all clients),
        ``max_weight_per_minute``, ``answered_429``, ``answered_418``, and the deadlines
        (exchange ms) of the forced ``forced_429_until`` / ``forced_418_until``."""
        result: dict[str, Any] = self._get("/sim/limits")
        return result

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/sim/info")
        return result

    def server_time(self) -> int:
        return int(self._get("/api/v3/time")["serverTime"])

    def stop(self) -> None:
        self.process.kill()


def start_sim(
    log_dir: Path,
    *,
    speed: float = DEFAULT_SPEED,
    symbols: Sequence[str] = SIM_SYMBOLS,
    seed: int = 7,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    timeout: float = 30.0,
) -> SimClient:
    """Start ``botfleet exchange-sim`` and wait until it answers ping."""
    port = port or free_port()
    args = [
        "exchange-sim",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--symbols",
        ",".join(symbols),
        "--speed",
        str(speed),
        "--seed",
        str(seed),
        "--api-key",
        SIM_API_KEY,
        "--api-secret",
        SIM_API_SECRET,
        "--extra-key",
        f"{SIM_API_KEY_2}:{SIM_API_SECRET_2}",
        *extra_args,
    ]
    proc = BotfleetProcess(args, log_dir / f"exchange-sim-{port}.log").start()
    client = SimClient("127.0.0.1", port, proc, speed)
    try:
        proc.wait_http(client.rest_url + "/api/v3/ping", timeout=timeout)
    except BaseException:
        proc.kill()
        raise
    return client


class SimFactory(Protocol):
    def __call__(
        self,
        *,
        speed: float = ...,
        symbols: Sequence[str] = ...,
        seed: int = ...,
        extra_args: Sequence[str] = ...,
    ) -> SimClient: ...


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    """One simulator per test module (speed 60, BTCUSDT/ETHUSDT/BNBUSDT); faults cleared
    before each use is the test's job (``sim.clear_faults()``)."""
    client = start_sim(tmp_path_factory.mktemp("sim"))
    yield client
    client.stop()


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[SimFactory]:
    """Start simulators with custom flags; each is stopped at teardown."""
    started: list[SimClient] = []

    def factory(**kwargs: Any) -> SimClient:
        client = start_sim(tmp_path, **kwargs)
        started.append(client)
        return client

    yield factory  # type: ignore[misc]
    for client in started:
        client.stop()
