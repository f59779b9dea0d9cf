"""Warm-up depth (issue 16): ``botfleet ingestion`` as a real process against the simulator
(a real process, three days of 1m history) keeps and backfills each series' candle list
as deep as the warm-up its bots declare in ``market:warmup``.

BTCUSDT's bots declare 2,600 candles (within the history): its list grows from the
first page to at least that, gap-free and equal to the simulator's klines, and stays
longer than the default cap while live candles are appended. ETHUSDT's declare 6,000,
more than the exchange has: its list reaches the exchange's first candle, which is
recorded in ``market:history-start``. Every page went through the shared weight budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from shared import keys
from shared.binance.parsing import decode_rest_klines, rest_klines_to_candles
from shared.messages import Candle, decode
from tests.integration.ingestion.market import INTERVAL, M, ingestion_env
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient, start_sim

HISTORY_DAYS = 3
DEMAND = {"BTCUSDT": 2600, "ETHUSDT": 6000}
CANDLES_MAX = 300  # the default cap of this test's ingestion: demand must lift it


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(
        tmp_path_factory.mktemp("sim"),
        speed=120.0,
        symbols=tuple(DEMAND),
        extra_args=["--history-days", str(HISTORY_DAYS)],
    )
    yield client
    client.stop()


def listed(r: sync_redis.Redis, symbol: str) -> list[Candle]:
    return [decode({"type": "candle", "data": raw})  # type: ignore[misc]
            for raw in r.lrange(keys.candles(symbol, INTERVAL), 0, -1)]  # fmt: skip


def sim_klines(sim: SimClient, symbol: str, start: int, end: int) -> dict[int, Candle]:
    out: dict[int, Candle] = {}
    while start <= end:
        now = sim.server_time()
        body = httpx.get(f"{sim.rest_url}/api/v3/klines", params={
            "symbol": symbol, "interval": INTERVAL, "startTime": start, "limit": 1000,
        }, timeout=10).content  # fmt: skip
        rows = rest_klines_to_candles(symbol, INTERVAL, decode_rest_klines(body), now)
        if not rows:
            break
        out.update((c.open_time, c) for c in rows)
        start = rows[-1].open_time + M
    return out


def first_open_time(sim: SimClient, symbol: str) -> int:
    body = httpx.get(f"{sim.rest_url}/api/v3/klines", params={
        "symbol": symbol, "interval": INTERVAL, "startTime": 0, "limit": 1,
    }, timeout=10).content  # fmt: skip
    return decode_rest_klines(body)[0].open_time


def test_lists_are_backfilled_and_kept_as_deep_as_the_declared_warmup(
    sim: SimClient, clean_redis_url: str, tmp_path: Path
) -> None:
    r = sync_redis.Redis.from_url(clean_redis_url)
    for symbol, n in DEMAND.items():
        member = keys.subscription(symbol, INTERVAL)
        r.sadd(keys.MARKET_SUBSCRIPTIONS, member)
        r.hset(keys.MARKET_WARMUP, member, n)
    proc = BotfleetProcess(
        ["ingestion"],
        tmp_path / "ingestion.log",
        ingestion_env(
            sim, clean_redis_url, "ing-depth", BOTFLEET_INGESTION_CANDLES_MAX=str(CANDLES_MAX)
        ),
    ).start()
    try:
        btc = keys.candles("BTCUSDT", INTERVAL)
        proc.wait_for(lambda: r.llen(btc) >= DEMAND["BTCUSDT"], 60, "BTCUSDT as deep as demanded")
        eth_start = keys.subscription("ETHUSDT", INTERVAL)
        proc.wait_for(
            lambda: r.hget(keys.MARKET_HISTORY_START, eth_start) is not None,
            60,
            "ETHUSDT back to the exchange's first candle",
        )
        # live candles keep coming; the lists keep their depth (the cap follows demand)
        before = listed(r, "BTCUSDT")[-1].open_time
        proc.wait_for(
            lambda: listed(r, "BTCUSDT")[-1].open_time >= before + 3 * M, 20, "live closes"
        )
        health = {k.decode(): v.decode() for k, v in r.hgetall(keys.health("ingestion", "ing-depth")).items()}  # fmt: skip
        weight = sum(
            int(r.get(k) or 0) for k in r.scan_iter(match=keys.ratelimit_weight(0)[:-1] + "*")
        )
    finally:
        proc.kill()

    first = first_open_time(sim, "ETHUSDT")
    assert int(r.hget(keys.MARKET_HISTORY_START, eth_start) or 0) == first
    for symbol in DEMAND:
        candles = listed(r, symbol)
        times = [c.open_time for c in candles]
        assert times == list(range(times[0], times[-1] + 1, M)), f"{symbol}: gap or duplicate"
        assert all(c.closed for c in candles)
        truth = sim_klines(sim, symbol, times[0], times[-1])
        for c in candles:
            t = truth[c.open_time]
            assert (c.open, c.high, c.low, c.close, c.volume) == (
                t.open, t.high, t.low, t.close, t.volume,
            ), f"{symbol} {c.open_time}: {c} differs from the simulator's {t}"  # fmt: skip
    assert len(listed(r, "BTCUSDT")) >= DEMAND["BTCUSDT"]
    assert len(listed(r, "BTCUSDT")) <= DEMAND["BTCUSDT"] + 100  # demand + the margin
    eth = listed(r, "ETHUSDT")
    assert eth[0].open_time == first and len(eth) < DEMAND["ETHUSDT"]
    pages = int(health["depth_pages"])
    assert pages >= 2 + 4  # BTCUSDT: 2,600 - the first 20 in pages of 1000; ETHUSDT: 4,300
    assert weight >= 2 * pages  # each klines page reserved its weight (2) in the budget
