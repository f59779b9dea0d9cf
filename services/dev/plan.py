"""What ``botfleet dev`` starts: one :class:`ProcessSpec` per child process (its
command line, its environment, how to tell it is ready), grouped into start phases.

Pure: no process is started here. The supervisor runs the phases in order, waits for
each phase to be ready (bounded), and stops them in :func:`stop_phases` order: bots
stop first (through the API), then the API, the runners, the gateway (which drains
the intents the runners left), ingestion, the simulator and Redis last.

Environment rules (DESIGN "Modes", "Configuration"):

* every child trades live against the simulator: ``BOTFLEET_TRADING_MODE=live``,
  ``BOTFLEET_BINANCE_ENV=sim`` and the simulator's REST/WS URLs;
* only the gateway gets the exchange key and secret, only the API its token;
  inherited exchange credentials and endpoint overrides are dropped, so a real key
  in the operator's shell can never reach the simulator or another service;
* secrets travel in the environment only, never on a command line (``ps`` shows
  command lines to every user of the machine).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Start order; each entry is a `botfleet <command>`.
SERVICES: tuple[str, ...] = (
    "exchange-sim", "ingestion", "gateway", "ledger", "backtest-worker", "runner", "api",
)  # fmt: skip
REDIS = "redis"

# Start phases (index = phase). Redis first, then the exchange, then everything that
# needs both; runners and the API last so the gateway is draining before any intent.
_PHASE = {
    REDIS: 0, "exchange-sim": 1, "ingestion": 2, "gateway": 2, "ledger": 2, "backtest-worker": 2,
    "runner": 3, "api": 3,
}  # fmt: skip

# Stop order by service (the reverse of the data flow): no new intents once the runners
# are gone, and the gateway finishes the ones already in its stream; the ledger after it,
# so the last reports are in SQL.
# The backtest worker (the API's jobs) stops with the API.
_STOP_ORDER = (
    "api", "backtest-worker", "runner", "gateway", "ledger", "ingestion", "exchange-sim", REDIS,
)  # fmt: skip

# Inherited variables a dev fleet never passes on: exchange credentials and endpoints
# (dev trades against its own simulator) and the production confirmation.
_DROPPED_ENV = (
    "BOTFLEET_BINANCE_API_KEY",
    "BOTFLEET_BINANCE_API_SECRET",
    "BOTFLEET_BINANCE_PRIVATE_KEY_FILE",
    "BOTFLEET_BINANCE_ENV",
    "BOTFLEET_BINANCE_REST_URL",
    "BOTFLEET_BINANCE_WS_URL",
    "BOTFLEET_CONFIRM_PRODUCTION",
    "BOTFLEET_TRADING_MODE",
    "BOTFLEET_API_TOKEN",
    "BOTFLEET_REDIS_URL",
    "BOTFLEET_INSTANCE",
)

SIM_KEY_ENV = "BOTFLEET_SIM_API_KEY"
SIM_SECRET_ENV = "BOTFLEET_SIM_API_SECRET"

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")


class PlanError(ValueError):
    """The requested fleet cannot be built (unknown service, bad count)."""


class Readiness(enum.StrEnum):
    REDIS_PING = "redis-ping"  # the Redis server answers PING
    TCP = "tcp"  # the port accepts connections
    HEARTBEAT = "heartbeat"  # health:{service}:{instance} exists


@dataclass(frozen=True)
class DevOptions:
    """What the operator asked for (flags of ``botfleet dev``)."""

    data_dir: Path
    services: tuple[str, ...] = SERVICES
    runners: int = 2
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    sim_host: str = "127.0.0.1"
    sim_port: int = 9100
    sim_speed: float = 60.0
    sim_seed: int = 7
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    redis_port: int = 6390
    external_redis_url: str | None = None  # BOTFLEET_REDIS_URL: use it, start none
    demo: bool = True
    ledger_database_url: str | None = None  # BOTFLEET_LEDGER_DATABASE_URL, else SQLite

    @property
    def ledger_url(self) -> str:
        """The ledger's database: the operator's, or a SQLite file in the data directory."""
        return self.ledger_database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def redis_url(self) -> str:
        return self.external_redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def sim_rest_url(self) -> str:
        return f"http://{self.sim_host}:{self.sim_port}"

    @property
    def sim_ws_url(self) -> str:
        return f"ws://{self.sim_host}:{self.sim_port}"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


@dataclass(frozen=True)
class Secrets:
    """Generated credentials; ``repr`` never shows them."""

    api_token: str = field(repr=False)
    sim_api_key: str = field(repr=False)
    sim_api_secret: str = field(repr=False)


@dataclass(frozen=True)
class ProcessSpec:
    name: str  # log prefix and instance name: "runner-2"
    service: str  # "runner", or "redis"
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)  # variables set on top of the inherited ones
    phase: int
    ready: Readiness
    ready_target: str  # "host:port" (TCP), the heartbeat service name, or the Redis URL
    stop_timeout_s: float = 15.0


def parse_services(value: str | None, available: Iterable[str]) -> tuple[str, ...]:
    """``--services`` (comma-separated, ``all`` or empty for every available one) in
    start order; an unknown name, or one whose package is not installed, is an error."""
    installed = [s for s in SERVICES if s in set(available)]
    if value is None or value.strip() in ("", "all"):
        return tuple(installed)
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SERVICES]
    if unknown:
        raise PlanError(
            f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}"
        )
    missing = [s for s in wanted if s not in installed]
    if missing:
        raise PlanError(f"not installed in this checkout: {', '.join(missing)}")
    return tuple(s for s in SERVICES if s in wanted)


def redis_argv(options: DevOptions, binary: str = "redis-server") -> tuple[str, ...]:
    """A private redis-server on loopback with AOF (``appendfsync everysec``) in the
    data directory, so a restart of the fleet keeps bots, trades and stats."""
    return (
        binary,
        "--port", str(options.redis_port),
        "--bind", "127.0.0.1",
        "--dir", str(options.redis_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
    )  # fmt: skip


def _botfleet(python: str, *args: str) -> tuple[str, ...]:
    return (python, "-m", "services", *args)


def fleet_env(options: DevOptions, name: str) -> dict[str, str]:
    """Variables every child shares: one Redis, live trading against the simulator."""
    return {
        "BOTFLEET_REDIS_URL": options.redis_url,
        "BOTFLEET_TRADING_MODE": "live",
        "BOTFLEET_BINANCE_ENV": "sim",
        "BOTFLEET_BINANCE_REST_URL": options.sim_rest_url,
        "BOTFLEET_BINANCE_WS_URL": options.sim_ws_url,
        "BOTFLEET_INSTANCE": name,
    }


def build_plan(
    options: DevOptions, secrets: Secrets, *, python: str = sys.executable
) -> list[ProcessSpec]:
    """Every child process in start order."""
    if options.runners < 0 or options.runners > 64:
        raise PlanError("--runners must be between 0 and 64")
    specs: list[ProcessSpec] = []
    if options.external_redis_url is None:
        specs.append(
            ProcessSpec(
                name=REDIS,
                service=REDIS,
                argv=redis_argv(options),
                env={},
                phase=_PHASE[REDIS],
                ready=Readiness.REDIS_PING,
                ready_target=options.redis_url,
                stop_timeout_s=20.0,
            )
        )
    for service in SERVICES:
        if service not in options.services:
            continue
        if service == "exchange-sim":
            specs.append(_sim(options, secrets, python))
        elif service == "runner":
            for n in range(1, options.runners + 1):
                specs.append(_service(options, service, f"runner-{n}", python))
        elif service == "gateway":
            spec = _service(options, service, "gateway", python, stop_timeout_s=30.0)
            env = dict(spec.env)
            env["BOTFLEET_BINANCE_API_KEY"] = secrets.sim_api_key
            env["BOTFLEET_BINANCE_API_SECRET"] = secrets.sim_api_secret
            # A sped-up exchange clock cannot be followed with one offset; the simulator
            # accepts wall-clock timestamps as well.
            env["BOTFLEET_GATEWAY_USE_SERVER_TIME"] = "true" if options.sim_speed == 1 else "false"
            specs.append(_replace_env(spec, env))
        elif service == "api":
            spec = _service(options, service, "api", python)
            env = dict(spec.env)
            env["BOTFLEET_API_TOKEN"] = secrets.api_token
            env["BOTFLEET_API_HOST"] = options.api_host
            env["BOTFLEET_API_PORT"] = str(options.api_port)
            env["BOTFLEET_LEDGER_DATABASE_URL"] = options.ledger_url  # history reads
            specs.append(
                ProcessSpec(
                    name=spec.name,
                    service=spec.service,
                    argv=spec.argv,
                    env=env,
                    phase=spec.phase,
                    ready=Readiness.TCP,
                    ready_target=f"{_connect_host(options.api_host)}:{options.api_port}",
                )
            )
        elif service == "backtest-worker":
            spec = _service(options, service, service, python)
            # Candles of this fleet's simulator (its seed), kept with its data.
            env = {**spec.env, "BOTFLEET_KLINES_CACHE": str(options.data_dir / "klines")}
            specs.append(_replace_env(spec, env))
        elif service == "ledger":
            spec = _service(options, service, "ledger", python, stop_timeout_s=30.0)
            env = {**spec.env, "BOTFLEET_LEDGER_DATABASE_URL": options.ledger_url}
            specs.append(_replace_env(spec, env))
        else:
            specs.append(_service(options, service, service, python))
    return specs


def _sim(options: DevOptions, secrets: Secrets, python: str) -> ProcessSpec:
    # Through the launcher: the key pair goes in by environment, not on the command line.
    argv = (
        python,
        "-m",
        "services.dev.launch_sim",
        "exchange-sim",
        "--host", options.sim_host,
        "--port", str(options.sim_port),
        "--speed", f"{options.sim_speed:g}",
        "--seed", str(options.sim_seed),
        "--symbols", ",".join(options.symbols),
    )  # fmt: skip
    env = {
        "BOTFLEET_INSTANCE": "exchange-sim",
        # The simulator's accepted key pair (services/dev/launch_sim.py passes it on).
        SIM_KEY_ENV: secrets.sim_api_key,
        SIM_SECRET_ENV: secrets.sim_api_secret,
    }
    return ProcessSpec(
        name="exchange-sim",
        service="exchange-sim",
        argv=argv,
        env=env,
        phase=_PHASE["exchange-sim"],
        ready=Readiness.TCP,
        ready_target=f"{_connect_host(options.sim_host)}:{options.sim_port}",
    )


def _service(
    options: DevOptions, service: str, name: str, python: str, *, stop_timeout_s: float = 15.0
) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        service=service,
        argv=_botfleet(python, service),
        env=fleet_env(options, name),
        phase=_PHASE[service],
        ready=Readiness.HEARTBEAT,
        ready_target=service,
        stop_timeout_s=stop_timeout_s,
    )


def _replace_env(spec: ProcessSpec, env: Mapping[str, str]) -> ProcessSpec:
    return ProcessSpec(
        name=spec.name,
        service=spec.service,
        argv=spec.argv,
        env=env,
        phase=spec.phase,
        ready=spec.ready,
        ready_target=spec.ready_target,
        stop_timeout_s=spec.stop_timeout_s,
    )


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def start_phases(specs: Iterable[ProcessSpec]) -> list[list[ProcessSpec]]:
    """The specs grouped by phase, in start order (empty phases left out)."""
    by_phase: dict[int, list[ProcessSpec]] = {}
    for spec in specs:
        by_phase.setdefault(spec.phase, []).append(spec)
    return [by_phase[p] for p in sorted(by_phase)]


def stop_phases(specs: Iterable[ProcessSpec]) -> list[list[ProcessSpec]]:
    """The specs grouped by service in stop order; instances of one service stop together."""
    groups: list[list[ProcessSpec]] = []
    specs = list(specs)
    for service in _STOP_ORDER:
        group = [s for s in specs if s.service == service]
        if group:
            groups.append(group)
    return groups


def child_env(inherited: Mapping[str, str], spec: ProcessSpec) -> dict[str, str]:
    """The full environment of a child: the operator's, without anything in
    ``_DROPPED_ENV``, plus the spec's own variables; children log in the console
    format unless the operator chose one (the supervisor prefixes each line)."""
    env = {k: v for k, v in inherited.items() if k not in _DROPPED_ENV}
    env.setdefault("BOTFLEET_LOG_FORMAT", "console")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(spec.env)
    return env


def secret_values(secrets: Secrets) -> tuple[str, ...]:
    """What the supervisor must never print in relayed log lines (the API token is
    printed once, on purpose, in the banner)."""
    return (secrets.sim_api_key, secrets.sim_api_secret)


def redis_cli_command(url: str) -> str:
    """The ``redis-cli`` command line that opens ``url`` (without its password)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"redis-cli -s {parts.path}"
    args = ["redis-cli", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    db = parts.path.strip("/")
    if db and db != "0":
        args += ["-n", db]
    if parts.scheme == "rediss":
        args.append("--tls")
    if parts.password:
        args.append("--askpass")
    return " ".join(args)


def ports_in_use(options: DevOptions, bind: Callable[[str, int], bool]) -> list[str]:
    """The listening addresses this fleet needs that ``bind`` (host, port -> could bind)
    says are taken, described for people (``"API 127.0.0.1:8000 (--api-port)"``)."""
    wanted: list[tuple[str, str, int, str]] = []
    if options.external_redis_url is None:
        wanted.append(("Redis", "127.0.0.1", options.redis_port, "--redis-port"))
    if "exchange-sim" in options.services:
        wanted.append(("simulator", options.sim_host, options.sim_port, "--sim-port"))
    if "api" in options.services:
        wanted.append(("API", options.api_host, options.api_port, "--api-port"))
    return [
        f"{what} {host}:{port} ({flag})"
        for what, host, port, flag in wanted
        if not bind(host, port)
    ]
