"""The fleet of the guard-rail end-to-end tests, composed process by process.

One private redis-server; the exchange simulator at ``--speed 1`` (its clock is the
wall clock, so the exchange minutes it counts weight in are the minutes of the fleet's
``WeightBudget`` and the stale gate's ages are real seconds) with a low request-weight
limit and an Ed25519 public key registered; two ingestion instances (one shard each);
two live gateways signing with the Ed25519 private key, with guard rails set; one
runner with a short stale grace; the API. Every process is a real ``botfleet``
process; the tests talk to them only through Redis, the API and the simulator's
``/sim/*`` admin endpoints (which cost no request weight: any other direct REST call
from a test would spend the address's weight outside the fleet's budget).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis as sync_redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import keys
from shared.messages import Event, ExecutionReport, OrderIntent, decode, encode
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import RedisServer, free_port
from tests.support.sim import SimClient, start_sim

WEIGHT_LIMIT = 240  # the simulator's REQUEST_WEIGHT per exchange minute
WEIGHT_MARGIN = 0.1  # the services' default safety margin
BUDGET = int(WEIGHT_LIMIT * (1 - WEIGHT_MARGIN))  # what the fleet lets itself use
BOT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
NOT_ALLOWED = "BNBUSDT"  # listed by the exchange, outside the gateways' allowed list
# symbols only the backfill uses: 24 of them x 5 intervals = 120 klines requests (240)
FILLERS = tuple(f"X{a}{b}USDT" for a in "ABCDEF" for b in "GHJK")
ALL_SYMBOLS = (*BOT_SYMBOLS, NOT_ALLOWED, *FILLERS)
ALLOWED = (*BOT_SYMBOLS, *FILLERS)
MAX_ORDER_NOTIONAL = 1000
BOT_ORDERS_PER_MIN = 10
STALE_GRACE_S = 2.0
ED_API_KEY = "edkey" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
GATEWAYS = ("gw-a", "gw-b")
INGESTIONS = ("ing-a", "ing-b")


def ed25519_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A fresh Ed25519 key pair as PEM files (private PKCS#8, public SPKI)."""
    key = Ed25519PrivateKey.generate()
    private = directory / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = directory / f"{name}.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@dataclass
class GuardFleet:
    workdir: Path
    redis_server: RedisServer
    sim: SimClient
    api_port: int
    token: str
    procs: dict[str, BotfleetProcess] = field(default_factory=dict)
    _r: sync_redis.Redis | None = None
    _api: httpx.Client | None = None

    # --- access ------------------------------------------------------------------------
    @property
    def r(self) -> Any:
        """A synchronous client (typed ``Any``: redis-py's stubs mix in async returns)."""
        if self._r is None:
            self._r = sync_redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        return self._r

    @property
    def api(self) -> httpx.Client:
        if self._api is None:
            self._api = httpx.Client(
                base_url=f"http://127.0.0.1:{self.api_port}",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10.0,
            )
        return self._api

    def any_proc(self) -> BotfleetProcess:
        return self.procs["runner"]

    def wait_for(self, condition: Any, timeout: float, what: str) -> None:
        """Wait for ``condition`` while checking that every process is still alive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if not proc.alive():
                    raise RuntimeError(f"{name} exited while waiting for {what}:\n{self.logs()}")
            try:
                if condition():
                    return
            except (httpx.HTTPError, sync_redis.RedisError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{what} not seen within {timeout}s")

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"===== {name} =====\n{proc.log_text()[-tail:]}" for name, proc in self.procs.items()
        )

    def health(self, service: str, instance: str) -> dict[str, str]:
        return dict(self.r.hgetall(keys.health(service, instance)))

    # --- playing the runners: intents in, reports out ---------------------------------
    def send(self, *intents: OrderIntent) -> None:
        pipe = self.r.pipeline(transaction=False)
        for intent in intents:
            pipe.xadd(keys.ORDER_INTENTS, encode(intent))
        pipe.execute()

    def reports(self) -> list[ExecutionReport]:
        out = []
        for _id, fields in self.r.xrange(keys.EXECUTIONS):
            message = decode(fields)
            assert isinstance(message, ExecutionReport)
            out.append(message)
        return out

    def final_reports(self, wanted: set[str]) -> dict[str, list[ExecutionReport]]:
        got: dict[str, list[ExecutionReport]] = {}
        for report in self.reports():
            if report.final and report.intent_id in wanted:
                got.setdefault(report.intent_id, []).append(report)
        return got

    def intents(self) -> list[tuple[int, OrderIntent]]:
        """Every intent in the stream with the ms time of its stream id."""
        out = []
        for entry_id, fields in self.r.xrange(keys.ORDER_INTENTS):
            message = decode(fields)
            if isinstance(message, OrderIntent):
                out.append((int(entry_id.split("-")[0]), message))
        return out

    def events(self) -> list[Event]:
        out = []
        for _id, fields in self.r.xrange(keys.EVENTS):
            message = decode(fields)
            if isinstance(message, Event):
                out.append(message)
        return out

    def sim_order_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.sim.orders():
            counts[order["clientOrderId"]] = counts.get(order["clientOrderId"], 0) + 1
        return counts

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        if self._api is not None:
            self._api.close()
        for proc in self.procs.values():
            proc.kill()
        self.sim.stop()
        if self._r is not None:
            self._r.close()
        self.redis_server.stop(kill=True)


def _start(fleet: GuardFleet, name: str, args: list[str], env: dict[str, str]) -> None:
    fleet.procs[name] = BotfleetProcess(args, fleet.workdir / f"{name}.log", env).start()


def start_guard_fleet(workdir: Path) -> GuardFleet:
    redis_server = RedisServer(workdir / "redis").start()
    private, public = ed25519_pair(workdir, "fleet-key")
    sim = start_sim(
        workdir,
        speed=1.0,
        symbols=ALL_SYMBOLS,
        extra_args=[
            "--weight-limit", str(WEIGHT_LIMIT),
            "--ed25519-public-key", str(public),
            "--ed25519-api-key", ED_API_KEY,
            "--history-days", "30",
        ],
    )  # fmt: skip
    fleet = GuardFleet(workdir, redis_server, sim, free_port(), secrets.token_urlsafe(24))
    try:
        base = {**sim.env(), "BOTFLEET_REDIS_URL": redis_server.url, "BOTFLEET_LOG_LEVEL": "info"}
        del base["BOTFLEET_BINANCE_API_SECRET"]  # only the gateways hold a key: Ed25519
        del base["BOTFLEET_BINANCE_API_KEY"]
        for name in GATEWAYS:
            _start(
                fleet,
                name,
                ["gateway"],
                {
                    **base,
                    "BOTFLEET_INSTANCE": name,
                    "BOTFLEET_TRADING_MODE": "live",
                    "BOTFLEET_BINANCE_API_KEY": ED_API_KEY,
                    "BOTFLEET_BINANCE_PRIVATE_KEY_FILE": str(private),
                    "BOTFLEET_GATEWAY_USE_SERVER_TIME": "true",
                    "BOTFLEET_GATEWAY_HTTP_TIMEOUT_S": "5",
                    "BOTFLEET_GATEWAY_CLAIM_IDLE_MS": "3000",
                    "BOTFLEET_GATEWAY_ALLOWED_SYMBOLS": ",".join(ALLOWED),
                    "BOTFLEET_GATEWAY_MAX_ORDER_NOTIONAL": str(MAX_ORDER_NOTIONAL),
                    "BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN": str(BOT_ORDERS_PER_MIN),
                },
            )
        for name in INGESTIONS:
            _start(
                fleet,
                name,
                ["ingestion"],
                {
                    **base,
                    "BOTFLEET_INSTANCE": name,
                    "BOTFLEET_INGESTION_SHARDS": "2",
                    "BOTFLEET_INGESTION_MAX_SHARDS": "1",
                    "BOTFLEET_INGESTION_HISTORY": "100",
                    "BOTFLEET_INGESTION_STALE_GRACE_S": str(STALE_GRACE_S),
                },
            )
        _start(
            fleet,
            "runner",
            ["runner"],
            {
                **base,
                "BOTFLEET_INSTANCE": "runner",
                "BOTFLEET_RUNNER_STALE_GRACE_S": str(STALE_GRACE_S),
                "BOTFLEET_RUNNER_RECONCILE_INTERVAL_S": "1",
            },
        )
        _start(
            fleet,
            "api",
            ["api", "--port", str(fleet.api_port)],
            {
                **base,
                "BOTFLEET_INSTANCE": "api",
                "BOTFLEET_API_TOKEN": fleet.token,
                "BOTFLEET_TRADING_MODE": "live",
                "BOTFLEET_API_STALE_AFTER_S": "3",
            },
        )
        ready = [
            *(keys.health("gateway", n) for n in GATEWAYS),
            *(keys.health("ingestion", n) for n in INGESTIONS),
            keys.health("runner", "runner"),
        ]
        fleet.wait_for(lambda: all(fleet.r.exists(k) for k in ready), 60, "every heartbeat")
        fleet.wait_for(
            lambda: fleet.r.hlen(keys.EXCHANGE_SYMBOLS) >= len(ALL_SYMBOLS), 30, "exchange:symbols"
        )
        # the bots' series, subscribed early so that prices exist for the intents
        fleet.r.sadd(keys.MARKET_SUBSCRIPTIONS, *(keys.subscription(s, "1s") for s in BOT_SYMBOLS))
        fleet.r.publish(keys.MARKET_SUBSCRIPTIONS_CHANNEL, "changed")
        fleet.wait_for(
            lambda: all(fleet.r.exists(keys.price(s)) for s in BOT_SYMBOLS), 30, "prices"
        )
        fleet.wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{fleet.api_port}/healthz").status_code == 200,
            30,
            "the API",
        )
    except BaseException:
        print(fleet.logs())
        fleet.close()
        raise
    return fleet


def guard_fleet(workdir: Path) -> Iterator[GuardFleet]:
    fleet = start_guard_fleet(workdir)
    try:
        yield fleet
    finally:
        fleet.close()


def rejections(fleet: GuardFleet) -> dict[str, int]:
    """Rejection counts of both gateways' health keys added up."""
    total: dict[str, int] = {}
    for name in GATEWAYS:
        raw = fleet.health("gateway", name).get("rejections") or "{}"
        for reason, count in json.loads(raw).items():
            total[reason] = total.get(reason, 0) + int(count)
    return total
