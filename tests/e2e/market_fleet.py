"""A fleet fed by the real market path, composed process by process: the exchange
simulator (sped up), ``botfleet ingestion`` (candles, prices, exchange rules, warm-up
depth), a paper ``botfleet gateway`` and runners started by name. Bots are written the
way the API writes them (``bot:{id}``, ``bots``, a START command). Used by the tests of
issue 16: adoption of long-warm-up bots, multi-timeframe bots, a plugin strategy trading.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as sync_redis

from shared import keys
from shared.bots import BotStatus, Desired
from shared.messages import BotCommand, CommandAction, encode
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient

LEASE_MS = 2000


def bot_config(
    strategy: str, params: dict[str, Any], *, symbol: str = "BTCUSDT", **extra: Any
) -> str:
    return json.dumps(
        {
            "name": f"{strategy} bot",
            "symbol": symbol,
            "interval": "1m",
            "strategy": strategy,
            "params": params,
            "quote_allocation": "1000",
            "sizing": {"mode": "fixed_quote", "quote_amount": "100"},
            **extra,
        }
    )


@dataclass
class MarketFleet:
    sim: SimClient
    redis_url: str
    workdir: Path
    processes: list[BotfleetProcess]
    procs: dict[str, BotfleetProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.r: Any = sync_redis.Redis.from_url(self.redis_url, decode_responses=True)

    # --- processes -----------------------------------------------------------------------
    def _start(self, name: str, args: list[str], env: dict[str, str]) -> BotfleetProcess:
        proc = BotfleetProcess(
            args,
            self.workdir / f"{name}.log",
            {"BOTFLEET_REDIS_URL": self.redis_url, "BOTFLEET_INSTANCE": name, **env},
        ).start()
        self.processes.append(proc)
        self.procs[name] = proc
        return proc

    def start_ingestion(self, name: str = "ing") -> BotfleetProcess:
        return self._start(name, ["ingestion"], self.sim.env())

    def start_gateway(self, name: str = "gw") -> BotfleetProcess:
        return self._start(
            name,
            ["gateway"],
            {
                "BOTFLEET_TRADING_MODE": "paper",
                "BOTFLEET_PAPER_BALANCES": "USDT=10000000",
                "BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN": "0",
                "BOTFLEET_GATEWAY_FLEET_ORDERS_PER_MIN": "0",
            },
        )

    def start_runner(self, name: str, *, capacity: int = 100, **env: str) -> BotfleetProcess:
        args = ["runner", "--lease-ms", str(LEASE_MS), "--reconcile-interval", "0.3"]
        args += ["--block-ms", "100"]
        return self._start(
            name,
            args,
            {
                "BOTFLEET_RUNNER_CAPACITY": str(capacity),
                # every candle missed while a bot had no owner is decided on adoption
                "BOTFLEET_RUNNER_CATCH_UP_CANDLES": "1000",
                # the sped-up market's clock makes seconds of wall time minutes of data age
                "BOTFLEET_RUNNER_STALE_GRACE_S": "3600",
                **env,
            },
        )

    def logs(self) -> str:
        return "\n".join(
            f"===== {name} =====\n{proc.log_text()[-4000:]}" for name, proc in self.procs.items()
        )

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll ``condition`` until truthy (returned); no process may die meanwhile but
        the killed ones."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.proc is not None and proc.proc.returncode is None and not proc.alive():
                    raise RuntimeError(f"{name} exited while waiting for {what}")
            last = condition()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"{what} not seen within {timeout}s (last: {last!r})")

    def healthy(self, service: str, name: str) -> bool:
        return bool(self.r.exists(keys.health(service, name)))

    # --- bots, as the API writes them ---------------------------------------------------
    def create_bot(self, bot_id: str, config: str) -> None:
        now = int(time.time() * 1000)
        self.r.hset(
            keys.bot(bot_id),
            mapping={
                "config": config,
                "desired": Desired.RUNNING.value,
                "status": BotStatus.STOPPED.value,
                "created_at": now,
            },
        )
        self.r.zadd(keys.BOTS, {bot_id: now})
        command = BotCommand(
            command_id=f"c-{bot_id}-{now}",
            bot_id=bot_id,
            action=CommandAction.START,
            issued_at=now,
        )
        self.r.xadd(keys.BOT_COMMANDS, encode(command))

    def bot(self, bot_id: str) -> dict[str, str]:
        return dict(self.r.hgetall(keys.bot(bot_id)))

    def decisions(self, bot_id: str) -> dict[int, dict[str, str]]:
        """The bot's decisions on closed candles, by candle open time (its log)."""
        out: dict[int, dict[str, str]] = {}
        for _, entry in self.r.xrange(keys.bot_log(bot_id)):
            if entry.get("candle") and entry.get("signal"):
                out[int(entry["candle"])] = entry
        return out
