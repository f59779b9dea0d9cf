"""The fleet of issue 15's fault tests (``test_stuck_bots.py``), composed process by
process, and what those tests read from it.

The session's redis-server (flushed once, when the module's fleet starts); the exchange
simulator at ``--speed 1`` with limits far above what a thousand bots ask for; one live
gateway against it (rails off: the tests are about intents in flight, not the rails);
three runners with short leases, a short bounded wait (``needs_attention``) and quick
re-sends. The test plays ingestion: it writes each series' history and the candles and
ticks that make every bot decide at the same moment, so the intents of a thousand bots
are in flight together when the faults strike. Bots are written the way the API writes
them (``bot:{id}``, ``bots``, a START command).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis as sync_redis

from shared import keys
from shared.binance.rules import rules_from_symbol_info, rules_to_json
from shared.binance.schemas import ExchangeInfo
from shared.bots import BotStatus, Desired, client_order_id
from shared.messages import (
    BotCommand,
    CommandAction,
    Event,
    ExecutionReport,
    OrderIntent,
    Tick,
    decode,
    encode,
    encode_json,
)
from tests.support.messages import candle
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient, start_sim

MINUTE = 60_000
LEASE_MS = 3000
RECONCILE_S = 0.5
PENDING_TIMEOUT_S = 4  # the bounded wait before needs_attention
# The production default: recovery must not lean on re-sends every few seconds (an
# adopter's own re-send is what must get its bot's intent placed).
PENDING_RESEND_S = 30
RUNNERS = ("sa", "sb", "sc")
GATEWAY = "gw-stuck"
# Bots whose status has not settled this long after the faults end are stuck. Settling
# takes the gateway's backlog (~1,000-2,000 live orders at a few hundred a second on
# this machine), adoption (one lease plus a reconcile pass) and the bounded wait.
SETTLE_S = 90


def bot_config(symbol: str, *, sell_on_overbought: bool = False) -> str:
    """RSI(5) bots: a falling run then one up candle is a BUY for all of them at once."""
    return json.dumps(
        {
            "name": "stuck test bot",
            "symbol": symbol,
            "interval": "1m",
            "strategy": "rsi",
            "params": {
                "period": 5,
                "oversold": 30,
                "overbought": 70,
                "sell_on_overbought": sell_on_overbought,
            },
            "quote_allocation": "1000",
            "sizing": {"mode": "fixed_quote", "quote_amount": "20"},
            "stop_loss_pct": "5",
            "close_on_stop": False,
        }
    )


def falling(price: Decimal, n: int = 30) -> tuple[list[Decimal], Decimal]:
    """Closes falling 0.2 % a candle from ``price`` (RSI 0), and a next close 0.6 % up
    from the last that lifts RSI(5) above 30 (the ratios of tests' 100, 99, ... +3)."""
    step = (price / 500).quantize(Decimal("0.00000001"))
    assert step > 0, price
    closes = [price - i * step for i in range(n)]
    return closes, closes[-1] + 3 * step


@dataclass
class StuckFleet:
    workdir: Path
    redis_url: str
    sim: SimClient
    procs: dict[str, BotfleetProcess] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    dead: set[str] = field(default_factory=set)  # killed on purpose (not restarted yet)
    _r: Any = None

    # --- access ------------------------------------------------------------------------
    @property
    def r(self) -> Any:
        """A synchronous client (typed ``Any``: redis-py's stubs mix in async returns)."""
        if self._r is None:
            self._r = sync_redis.Redis.from_url(self.redis_url, decode_responses=True)
        return self._r

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(
            f"===== {name} =====\n{proc.log_text()[-tail:]}" for name, proc in self.procs.items()
        )

    def wait_for(self, condition: Any, timeout: float, what: str, poll: float = 0.2) -> Any:
        """Poll ``condition`` until truthy (returned); the fleet's processes that are
        meant to run must stay alive meanwhile."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if name not in self.dead and not proc.alive():
                    raise RuntimeError(f"{name} exited while waiting for {what}")
            last = condition()
            if last:
                return last
            time.sleep(poll)
        raise AssertionError(f"{what} not seen within {timeout}s (last: {last!r})")

    # --- faults ------------------------------------------------------------------------
    def pause(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGSTOP)
        self.paused.add(name)

    def resume(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGCONT)
        self.paused.discard(name)

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.dead.add(name)

    def restart(self, name: str) -> None:
        """Start a killed process again with its arguments (a new interpreter)."""
        self.procs[name].start()
        self.dead.discard(name)

    def resume_all(self) -> None:
        for name in list(self.paused):
            self.resume(name)

    # --- playing ingestion and the API -------------------------------------------------
    def sim_price(self, symbol: str) -> Decimal:
        rows = httpx.get(self.sim.rest_url + "/api/v3/ticker/price", timeout=10).json()
        return Decimal(next(row["price"] for row in rows if row["symbol"] == symbol))

    def seed_series(self, symbol: str) -> tuple[int, Decimal]:
        """A falling 1m history of ``symbol`` at the simulator's price level, closed just
        now; returns the next candle's open time and the close that makes RSI(5) bots buy."""
        closes, up = falling(self.sim_price(symbol))
        now = int(time.time() * 1000)
        last_open = (now // MINUTE) * MINUTE - MINUTE
        first = last_open - (len(closes) - 1) * MINUTE
        history = [candle(symbol, MINUTE, first + i * MINUTE, str(x)) for i, x in enumerate(closes)]
        self.r.rpush(keys.candles(symbol, "1m"), *[encode_json(c) for c in history])
        # the exchange's first candle: runners seed from this history, not wait for more
        self.r.hset(keys.MARKET_HISTORY_START, keys.subscription(symbol, "1m"), first)
        self.r.set(keys.price(symbol), str(closes[-1]))
        return last_open + MINUTE, up

    def push_candle(self, symbol: str, open_time: int, close: Decimal) -> None:
        c = candle(symbol, MINUTE, open_time, str(close))
        pipe = self.r.pipeline(transaction=False)
        pipe.rpush(keys.candles(symbol, "1m"), encode_json(c))
        pipe.xadd(keys.candle_stream(symbol, "1m"), encode(c))
        pipe.execute()

    def push_tick(self, symbol: str, price: Decimal) -> None:
        now = int(time.time() * 1000)
        pipe = self.r.pipeline(transaction=False)
        pipe.set(keys.price(symbol), str(price))
        pipe.hset(keys.MARKET_LAST_UPDATE, symbol, now)
        pipe.xadd(
            keys.tick_stream(symbol), encode(Tick(symbol=symbol, price=price, event_time=now))
        )
        pipe.execute()

    def create_bots(self, configs: dict[str, str]) -> None:
        """``bot:{id}`` with its config and ``desired=running``, the ``bots`` index and a
        START command each, as ``POST /bots`` and ``POST /bots/{id}/start`` write them."""
        now = int(time.time() * 1000)
        pipe = self.r.pipeline(transaction=False)
        for bot_id, cfg in configs.items():
            pipe.hset(
                keys.bot(bot_id),
                mapping={
                    "config": cfg,
                    "desired": Desired.RUNNING.value,
                    "status": BotStatus.STOPPED.value,
                    "created_at": now,
                },
            )
            pipe.zadd(keys.BOTS, {bot_id: now})
            command = BotCommand(
                command_id=f"start-{bot_id}",
                bot_id=bot_id,
                action=CommandAction.START,
                issued_at=now,
            )
            pipe.xadd(keys.BOT_COMMANDS, encode(command))
        pipe.execute()

    def retire(self, bot_ids: list[str]) -> None:
        """Stop a test's bots (desired state alone) so the next test's fleet is its own."""
        pipe = self.r.pipeline(transaction=False)
        for bot_id in bot_ids:
            pipe.hset(keys.bot(bot_id), "desired", Desired.STOPPED.value)
        pipe.execute()

    # --- reading -----------------------------------------------------------------------
    def bot_fields(self, bot_ids: list[str], *names: str) -> dict[str, dict[str, str]]:
        pipe = self.r.pipeline(transaction=False)
        for bot_id in bot_ids:
            pipe.hmget(keys.bot(bot_id), list(names))
        return {
            b: {n: v or "" for n, v in zip(names, values, strict=True)}
            for b, values in zip(bot_ids, pipe.execute(), strict=True)
        }

    def pendings(self, bot_ids: list[str]) -> dict[str, dict[str, str]]:
        pipe = self.r.pipeline(transaction=False)
        for bot_id in bot_ids:
            pipe.hgetall(keys.bot_pending(bot_id))
        return dict(zip(bot_ids, pipe.execute(), strict=True))

    def positions(self, bot_ids: list[str]) -> dict[str, dict[str, str]]:
        pipe = self.r.pipeline(transaction=False)
        for bot_id in bot_ids:
            pipe.hgetall(keys.bot_position(bot_id))
        return dict(zip(bot_ids, pipe.execute(), strict=True))

    def leases(self, bot_ids: list[str]) -> dict[str, str]:
        pipe = self.r.pipeline(transaction=False)
        for bot_id in bot_ids:
            pipe.get(keys.bot_lease(bot_id))
        return {b: v or "" for b, v in zip(bot_ids, pipe.execute(), strict=True)}

    def explain(self, bot_ids: list[str]) -> dict[str, Any]:
        """For a failure message: each bot's hash and its last log entries."""
        return {
            b: {
                "bot": {k: v for k, v in self.r.hgetall(keys.bot(b)).items() if k != "config"},
                "pending": self.r.hgetall(keys.bot_pending(b)),
                "stats": self.r.hgetall(keys.bot_stats(b)),
                "orders": {
                    cid: {k: v for k, v in self.r.hgetall(keys.order(cid)).items() if k != "report"}
                    for cid in {
                        client_order_id(i.intent_id) for _, i in self.intents() if i.bot_id == b
                    }
                },
                "log": [f for _, f in self.r.xrevrange(keys.bot_log(b), count=6)],
                "intents": [(e, i.epoch, i.intent_id) for e, i in self.intents() if i.bot_id == b],
                "reports": [
                    (e, r.epoch, r.status, r.final, r.reason)
                    for e, r in self.reports()
                    if r.bot_id == b
                ],
            }
            for b in bot_ids
        }

    def owners(self, bot_ids: list[str]) -> Counter[str]:
        return Counter(f["owner"] for f in self.bot_fields(bot_ids, "owner").values())

    def live_runners(self) -> set[str]:
        """Runners whose heartbeat is fresh (written within the last 2.5 s)."""
        now = int(time.time() * 1000)
        live = set()
        for name in RUNNERS:
            ts = self.r.hget(keys.health("runner", name), "ts")
            if ts and now - int(ts) <= 2500:
                live.add(name)
        return live

    def intents(self) -> list[tuple[str, OrderIntent]]:
        out = []
        for entry_id, fields in self.r.xrange(keys.ORDER_INTENTS):
            message = decode(fields)
            if isinstance(message, OrderIntent):
                out.append((entry_id, message))
        return out

    def reports(self) -> list[tuple[str, ExecutionReport]]:
        out = []
        for entry_id, fields in self.r.xrange(keys.EXECUTIONS):
            message = decode(fields)
            if isinstance(message, ExecutionReport):
                out.append((entry_id, message))
        return out

    def events(self) -> list[Event]:
        out = []
        for _id, fields in self.r.xrange(keys.EVENTS):
            message = decode(fields)
            if isinstance(message, Event):
                out.append(message)
        return out

    def gateway_caught_up(self) -> bool:
        """The gateway's group has read every intent and acknowledged all of them."""
        last = self.r.xrevrange(keys.ORDER_INTENTS, count=1)
        if not last:
            return True
        for group in self.r.xinfo_groups(keys.ORDER_INTENTS):
            if group["name"] == "gateway":
                return bool(group["last-delivered-id"] == last[0][0] and group["pending"] == 0)
        return False

    def sim_orders_by_cid(self) -> dict[str, list[dict[str, Any]]]:
        orders: dict[str, list[dict[str, Any]]] = {}
        for order in self.sim.orders():
            orders.setdefault(order["clientOrderId"], []).append(order)
        return orders

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self.resume_all()
        for proc in self.procs.values():
            proc.kill()
        self.sim.stop()
        if self._r is not None:
            self._r.close()


def stuck(fleet: StuckFleet, bot_ids: list[str], now_ms: int) -> dict[str, str]:
    """The bots of ``bot_ids`` that are stuck, each with what is wrong. A bot whose
    desired state is ``running`` is stuck when:

    - its status is neither ``running`` nor ``needs_attention`` (``starting`` or
      ``stopping`` forever, ``stopped``, ``error``);
    - it is ``needs_attention`` without a ``status_reason``;
    - it is ``running`` with an intent decided longer ago than the bounded wait (and a
      housekeeping pass): its outcome is unknown and no status says so;
    - no live runner holds its lease (nobody would act on its prices).
    """
    fields = fleet.bot_fields(bot_ids, "desired", "status", "status_reason")
    pendings = fleet.pendings(bot_ids)
    leases = fleet.leases(bot_ids)
    live = fleet.live_runners()
    bound_ms = int((PENDING_TIMEOUT_S + 3) * 1000)  # the bounded wait, a housekeeping pass
    out: dict[str, str] = {}
    for bot_id in bot_ids:
        f = fields[bot_id]
        if f["desired"] != Desired.RUNNING.value:
            continue
        status = f["status"]
        if status not in (BotStatus.RUNNING.value, BotStatus.NEEDS_ATTENTION.value):
            out[bot_id] = f"status {status!r} ({f['status_reason']})"
        elif status == BotStatus.NEEDS_ATTENTION.value and not f["status_reason"]:
            out[bot_id] = "needs_attention without a reason"
        elif status == BotStatus.RUNNING.value and pendings[bot_id].get("intent"):
            intent = msgspec.json.decode(pendings[bot_id]["intent"], type=OrderIntent)
            if now_ms - intent.created_at > bound_ms:
                out[bot_id] = (
                    f"running with {intent.intent_id} pending for {now_ms - intent.created_at} ms"
                )
        if bot_id not in out and leases[bot_id] not in live:
            out[bot_id] = f"lease held by {leases[bot_id]!r}, not a live runner"
    return out


def orders_per_decision(
    fleet: StuckFleet, decisions: dict[str, str]
) -> tuple[dict[str, int], dict[str, Counter[str]]]:
    """The simulator's orders per decision of ``decisions`` (bot id -> intent id; one
    decision = one intent id = one client order id), and each bot's orders by side
    (every order the simulator has under a client order id of that bot's intents)."""
    by_cid = fleet.sim_orders_by_cid()
    counts = {}
    for intent_id in decisions.values():
        counts[intent_id] = len(by_cid.get(client_order_id(intent_id), []))
    per_bot: dict[str, Counter[str]] = {}
    for _, intent in fleet.intents():  # what is left of the stream (the gateway trims it)
        if intent.bot_id in decisions:
            per_bot.setdefault(intent.bot_id, Counter())
    for bot_id, intent_id in decisions.items():
        for order in by_cid.get(client_order_id(intent_id), []):
            per_bot.setdefault(bot_id, Counter())[order["side"]] += 1
    return counts, per_bot


def start_stuck_fleet(workdir: Path, redis_url: str, symbols: list[str]) -> StuckFleet:
    sim = start_sim(
        workdir,
        speed=1.0,
        symbols=symbols,
        extra_args=[
            "--weight-limit", "1000000",
            "--orders-per-10s", "1000000",
            "--orders-per-day", "100000000",
            # the account holds every asset, as a real one running many bots does: an
            # exit that sells more than its bot bought is filled, not refused for lack
            # of balance
            "--balances", ",".join(
                ["USDT=100000000", *(f"{s.removesuffix('USDT')}=100000000" for s in symbols)]
            ),
            "--history-days", "2",
        ],
    )  # fmt: skip
    fleet = StuckFleet(workdir, redis_url, sim)
    try:
        r = fleet.r
        r.flushall()
        info = msgspec.json.decode(
            httpx.get(sim.rest_url + "/api/v3/exchangeInfo", timeout=10).content, type=ExchangeInfo
        )
        for symbol in info.symbols:  # as ingestion writes them
            r.hset(
                keys.EXCHANGE_SYMBOLS, symbol.symbol, rules_to_json(rules_from_symbol_info(symbol))
            )
        base = {**sim.env(), "BOTFLEET_REDIS_URL": redis_url, "BOTFLEET_LOG_LEVEL": "info"}
        fleet.procs[GATEWAY] = BotfleetProcess(
            ["gateway"],
            workdir / f"{GATEWAY}.log",
            {
                **base,
                "BOTFLEET_INSTANCE": GATEWAY,
                "BOTFLEET_TRADING_MODE": "live",
                # the simulator accepts wall-clock timestamps
                "BOTFLEET_GATEWAY_USE_SERVER_TIME": "false",
                "BOTFLEET_GATEWAY_HTTP_TIMEOUT_S": "5",
                "BOTFLEET_GATEWAY_MAX_ORDER_NOTIONAL": "0",
                "BOTFLEET_GATEWAY_BOT_ORDERS_PER_MIN": "0",
                "BOTFLEET_GATEWAY_FLEET_ORDERS_PER_MIN": "0",
                "BOTFLEET_GATEWAY_USER_STREAM": "false",
            },
        ).start()
        runner_env = {
            "BOTFLEET_REDIS_URL": redis_url,
            "BOTFLEET_LOG_LEVEL": "info",
            "BOTFLEET_RUNNER_LEASE_MS": str(LEASE_MS),
            "BOTFLEET_RUNNER_RECONCILE_INTERVAL_S": str(RECONCILE_S),
            "BOTFLEET_RUNNER_BLOCK_MS": "100",
            "BOTFLEET_RUNNER_PENDING_TIMEOUT_S": str(PENDING_TIMEOUT_S),
            "BOTFLEET_RUNNER_PENDING_RESEND_S": str(PENDING_RESEND_S),
            # the tests play a 1m market that does not move on its own: never stale here
            "BOTFLEET_RUNNER_STALE_GRACE_S": "3600",
            "BOTFLEET_RUNNER_LOG_HOLDS": "false",
        }
        for name in RUNNERS:
            fleet.procs[name] = BotfleetProcess(
                ["runner"], workdir / f"{name}.log", {**runner_env, "BOTFLEET_INSTANCE": name}
            ).start()
        ready = [keys.health("gateway", GATEWAY), *(keys.health("runner", n) for n in RUNNERS)]
        fleet.wait_for(lambda: all(r.exists(k) for k in ready), 60, "every heartbeat")
    except BaseException:
        print(fleet.logs())
        fleet.close()
        raise
    return fleet
