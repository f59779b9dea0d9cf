"""``botfleet ingestion`` as a real process against a live market: after forced
disconnects with dropped closes, a kill -9 and restart, and the death of the
active one of two instances, every candle list and candle stream holds each open
time exactly once, in order, with no gap, and equals the exchange's own klines.

The market is ``fake_exchange.FakeExchange`` (a Binance-shaped server of these
tests) until ``tests/support/sim.py`` lands.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from shared import keys
from shared.binance.parsing import decode_rest_klines, rest_klines_to_candles
from shared.messages import Candle, decode
from tests.integration.ingestion.fake_exchange import FakeExchange
from tests.support.processes import BotfleetProcess

SYMBOLS = ("BTCUSDT", "ETHUSDT")
M = 60_000


@pytest.fixture(scope="module")
def exchange() -> Iterator[FakeExchange]:
    ex = FakeExchange(speed=60.0).start()  # one 1m candle per wall second
    yield ex
    ex.stop()


def _ingestion(tmp: Path, redis_url: str, ex: FakeExchange, name: str) -> BotfleetProcess:
    env = {
        "BOTFLEET_REDIS_URL": redis_url,
        "BOTFLEET_BINANCE_ENV": "sim",
        "BOTFLEET_BINANCE_REST_URL": ex.url,
        "BOTFLEET_BINANCE_WS_URL": ex.ws_url,
        "BOTFLEET_INSTANCE": name,
        "BOTFLEET_INGESTION_LEASE_TTL_S": "1.5",
        "BOTFLEET_INGESTION_RECONNECT_BASE_S": "0.05",
        "BOTFLEET_INGESTION_RECONNECT_CAP_S": "0.5",
        "BOTFLEET_INGESTION_HISTORY": "20",
    }
    return BotfleetProcess(["ingestion"], tmp / f"{name}.log", env).start()


def _stored(r: sync_redis.Redis, symbol: str) -> tuple[list[Candle], list[Candle]]:
    listed = [decode({"type": "candle", "data": raw})
              for raw in r.lrange(keys.candles(symbol, "1m"), 0, -1)]  # fmt: skip
    streamed = [decode(f) for _, f in r.xrange(keys.candle_stream(symbol, "1m"))]
    return listed, streamed  # type: ignore[return-value]


def _caught_up(r: sync_redis.Redis, ex: FakeExchange) -> bool:
    newest_closed = (ex.now_ms() // M) * M - M
    for symbol in SYMBOLS:
        _, streamed = _stored(r, symbol)
        if not streamed or streamed[-1].open_time < newest_closed - M:
            return False
    return True


def _assert_exactly_once_in_order_no_gap(r: sync_redis.Redis, ex: FakeExchange) -> None:
    for symbol in SYMBOLS:
        listed, streamed = _stored(r, symbol)
        for series in (listed, streamed):
            times = [c.open_time for c in series]
            assert times, symbol
            assert times == list(range(times[0], times[-1] + 1, M)), f"{symbol}: gap or duplicate"
        first = streamed[0].open_time
        body = httpx.get(f"{ex.url}/api/v3/klines", params={
            "symbol": symbol, "interval": "1m", "startTime": first, "limit": 1000}).content  # fmt: skip
        truth = {c.open_time: c for c in rest_klines_to_candles(
            symbol, "1m", decode_rest_klines(body), ex.now_ms())}  # fmt: skip
        for c in streamed:
            t = truth[c.open_time]
            assert (c.open, c.high, c.low, c.close, c.volume) == (
                t.open, t.high, t.low, t.close, t.volume), f"{symbol} {c.open_time} differs"  # fmt: skip


@pytest.fixture
def subscribed(sync_redis_client: sync_redis.Redis) -> sync_redis.Redis:
    for symbol in SYMBOLS:
        sync_redis_client.sadd(keys.MARKET_SUBSCRIPTIONS, keys.subscription(symbol, "1m"))
    return sync_redis_client


def test_disconnects_dropped_closes_and_kill_9_leave_no_gap_and_no_duplicate(
    exchange: FakeExchange,
    subscribed: sync_redis.Redis,
    clean_redis_url: str,
    processes: list[BotfleetProcess],
    tmp_path: Path,
) -> None:
    r = subscribed
    proc = _ingestion(tmp_path, clean_redis_url, exchange, "ing-a")
    processes.append(proc)
    proc.wait_for(lambda: _caught_up(r, exchange), 20, "history and live candles")
    # (a) forced disconnects and dropped x:true frames
    for _ in range(2):
        exchange.drop_closes(2)
        exchange.drop_connections()
        time.sleep(1.5)
    proc.wait_for(lambda: _caught_up(r, exchange), 20, "catching up after disconnects")
    _assert_exactly_once_in_order_no_gap(r, exchange)
    health = r.hgetall(keys.health("ingestion", "ing-a"))
    assert int(health[b"reconnects"]) >= 2
    assert r.get(keys.price("BTCUSDT")) is not None
    assert r.hget(keys.MARKET_LAST_UPDATE, "BTCUSDT") is not None
    # (b) kill -9 and start again: candles closed while it was dead are backfilled
    proc.kill()
    time.sleep(3)
    proc.start()
    proc.wait_for(lambda: _caught_up(r, exchange), 20, "catching up after kill -9")
    _assert_exactly_once_in_order_no_gap(r, exchange)


def test_a_standby_takes_over_when_the_active_instance_dies(
    exchange: FakeExchange,
    subscribed: sync_redis.Redis,
    clean_redis_url: str,
    processes: list[BotfleetProcess],
    tmp_path: Path,
) -> None:
    r = subscribed
    first = _ingestion(tmp_path, clean_redis_url, exchange, "ing-1")
    processes.append(first)
    first.wait_for(lambda: _caught_up(r, exchange), 20, "first instance live")
    second = _ingestion(tmp_path, clean_redis_url, exchange, "ing-2")
    processes.append(second)
    second.wait_for(lambda: r.exists(keys.health("ingestion", "ing-2")) == 1, 20, "standby up")
    assert r.get(keys.ingestion_shard_lease(0)) == b"ing-1"
    first.kill()
    second.wait_for(
        lambda: r.get(keys.ingestion_shard_lease(0)) == b"ing-2", 20, "lease taken over"
    )
    time.sleep(2)
    second.wait_for(lambda: _caught_up(r, exchange), 20, "standby caught up")
    _assert_exactly_once_in_order_no_gap(r, exchange)
