"""Helpers of the ingestion process tests: ingestion processes against a running
``botfleet exchange-sim`` and the one check every test ends with — each candle list
and candle stream holds every open time exactly once, in order, with no gap, and each
candle equals (OHLCV) the simulator's own ``GET /api/v3/klines`` row."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis as sync_redis
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from shared import keys
from shared.binance.intervals import open_time_of
from shared.binance.parsing import decode_rest_klines, rest_klines_to_candles
from shared.messages import Candle, decode
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient

INTERVAL = "1m"
M = 60_000


class OtherClient:
    """Another client of the exchange, subscribed to the same streams for the whole test.

    On a real exchange a stream runs whether or not a given client listens. The
    simulator stops a stream when its last subscriber leaves and, when one subscribes
    again, replays every event since (past ``E``) — so a client killed or disconnected
    alone would miss nothing and its REST backfill would go untested. With this client
    connected the simulator behaves as the real one does (reported to its owner).
    """

    def __init__(self, ws_url: str, streams: list[str]) -> None:
        self.url = f"{ws_url}/stream?streams={'/'.join(streams)}"
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> OtherClient:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with (
                contextlib.suppress(OSError, WebSocketException),
                connect(self.url, open_timeout=5) as ws,
            ):
                while not self._stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        ws.recv(timeout=0.2)
                        self.frames += 1
            self._stop.wait(0.05)  # disconnected by a fault: reconnect


def ingestion_env(sim: SimClient, redis_url: str, name: str, **extra: str) -> dict[str, str]:
    return {
        **sim.env(),
        "BOTFLEET_REDIS_URL": redis_url,
        "BOTFLEET_INSTANCE": name,
        "BOTFLEET_INGESTION_LEASE_TTL_S": "1.5",
        "BOTFLEET_INGESTION_RECONNECT_BASE_S": "0.05",
        "BOTFLEET_INGESTION_RECONNECT_CAP_S": "0.5",
        "BOTFLEET_INGESTION_HISTORY": "20",
        **extra,
    }


@dataclass
class Market:
    """Ingestion processes writing into one Redis database from one simulator."""

    sim: SimClient
    redis_url: str
    log_dir: Path
    symbols: tuple[str, ...]
    started: list[BotfleetProcess] = field(default_factory=list)
    active: BotfleetProcess = field(init=False)  # the instance expected to hold the shard
    active_name: str = field(init=False)

    def __post_init__(self) -> None:
        self.r = sync_redis.Redis.from_url(self.redis_url)

    def subscribe(self, *symbols: str) -> None:
        for symbol in symbols:
            self.r.sadd(keys.MARKET_SUBSCRIPTIONS, keys.subscription(symbol, INTERVAL))
        self.r.publish(keys.MARKET_SUBSCRIPTIONS_CHANNEL, "changed")

    def start(self, name: str, **env: str) -> BotfleetProcess:
        proc = BotfleetProcess(
            ["ingestion"],
            self.log_dir / f"{name}.log",
            ingestion_env(self.sim, self.redis_url, name, **env),
        ).start()
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.kill()
        self.r.close()

    def logs(self) -> str:
        return "".join(
            f"\n===== log of {p.log_path.name} =====\n{p.log_text()[-6000:]}" for p in self.started
        )

    def health(self, name: str) -> dict[str, str]:
        raw = self.r.hgetall(keys.health("ingestion", name))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def fresh_health(self, name: str) -> dict[str, str]:
        """The first heartbeat written after this call (figures lag up to a second)."""
        old = self.health(name).get("ts")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            health = self.health(name)
            if health.get("ts") != old:
                return health
            time.sleep(0.05)
        raise TimeoutError(f"no heartbeat of {name}")

    def figure(self, name: str, figure: str) -> int:
        return int(self.health(name).get(figure, "0"))

    def stored(self, symbol: str) -> tuple[list[Candle], list[Candle]]:
        listed = [decode({"type": "candle", "data": raw})
                  for raw in self.r.lrange(keys.candles(symbol, INTERVAL), 0, -1)]  # fmt: skip
        streamed = [decode(f) for _, f in self.r.xrange(keys.candle_stream(symbol, INTERVAL))]
        return listed, streamed  # type: ignore[return-value]

    def newest_closed(self) -> int:
        return open_time_of(INTERVAL, self.sim.server_time()) - M

    def caught_up(self, since: int = 0) -> bool:
        """Every symbol's list and stream reach the newest closed candle (one candle of
        slack for the close in flight) and at least ``since``."""
        wanted = max(self.newest_closed() - M, since)
        for symbol in self.symbols:
            listed, streamed = self.stored(symbol)
            if not listed or not streamed:
                return False
            if min(listed[-1].open_time, streamed[-1].open_time) < wanted:
                return False
        return True

    def wait_caught_up(self, proc: BotfleetProcess, what: str, *, ahead: int = 0) -> None:
        """Wait until the stores reach the newest closed candle plus ``ahead`` more
        closes (candles written after the moment of the call)."""
        since = self.newest_closed() + ahead * M if ahead else 0
        proc.wait_for(lambda: self.caught_up(since), 20, what)

    def assert_exactly_once_in_order_no_gap_equal_to_the_sim(self) -> None:
        for symbol in self.symbols:
            listed, streamed = self.stored(symbol)
            for kind, series in (("list", listed), ("stream", streamed)):
                times = [c.open_time for c in series]
                assert times, f"{symbol} {kind} is empty"
                expected = list(range(times[0], times[-1] + 1, M))
                assert times == expected, f"{symbol} {kind}: gap or duplicate: {_steps(times)}"
                assert all(c.closed for c in series), f"{symbol} {kind}: an open candle"
            assert [c.open_time for c in listed] == [
                c.open_time for c in streamed if c.open_time <= listed[-1].open_time
            ][-len(listed) :], f"{symbol}: the list is not the stream's tail"
            truth = self.sim_klines(symbol, streamed[0].open_time)
            for c in streamed:
                t = truth.get(c.open_time)
                assert t is not None and t.closed, f"{symbol} {c.open_time}: not closed on the sim"
                assert (c.open, c.high, c.low, c.close, c.volume) == (
                    t.open, t.high, t.low, t.close, t.volume,
                ), f"{symbol} {c.open_time}: {c} differs from the simulator's {t}"  # fmt: skip

    def sim_klines(self, symbol: str, start: int) -> dict[int, Candle]:
        out: dict[int, Candle] = {}
        while True:
            now = self.sim.server_time()
            body = httpx.get(f"{self.sim.rest_url}/api/v3/klines", params={
                "symbol": symbol, "interval": INTERVAL, "startTime": start, "limit": 1000,
            }, timeout=10).content  # fmt: skip
            rows = rest_klines_to_candles(symbol, INTERVAL, decode_rest_klines(body), now)
            out.update((c.open_time, c) for c in rows)
            if len(rows) < 1000:
                return out
            start = rows[-1].open_time + M


def _steps(times: list[int]) -> list[tuple[int, float]]:
    return [(a, (b - a) / M) for a, b in itertools.pairwise(times) if b - a != M][:10]
