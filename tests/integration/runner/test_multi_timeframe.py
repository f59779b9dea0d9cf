"""A multi-timeframe bot in a real runner process: an ``ema_cross_trend`` bot on 5m with
a 1h trend filter subscribes to both series (with each one's warm-up recorded for
ingestion), is seeded from both, and receives the closed candles of both; it decides on
its own 5m closes, each decision seeing the newest 1h candle closed before that 5m
candle opened. The test plays ingestion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from shared import keys
from tests.integration.runner import support as s
from tests.integration.runner.test_runner_lifecycle import runner
from tests.support.processes import BotfleetProcess

FIVE = 5 * s.MINUTE
HOUR = 60 * s.MINUTE
SYMBOL = "BTCUSDT"


@pytest.fixture
def r(sync_redis_client: sync_redis.Redis) -> sync_redis.Redis:
    return sync_redis_client


def decisions(r: sync_redis.Redis) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for _, fields in r.xrange(keys.bot_log("mtf")):
        entry = s.text(fields)
        if entry.get("candle") and entry.get("values"):
            out[int(entry["candle"])] = {**entry, "values": json.loads(entry["values"])}
    return out


def decided(r: sync_redis.Redis, open_time: int) -> dict[str, Any]:
    return s.wait(lambda: decisions(r).get(open_time), 5, f"decision on {open_time}")


def test_a_bot_reads_its_own_series_and_its_trend_series(
    r: sync_redis.Redis, clean_redis_url: str, tmp_path: Path, processes: list[BotfleetProcess]
) -> None:
    hours = s.history(SYMBOL, [100.0 + i for i in range(10)], interval="1h", interval_ms=HOUR)
    fives = s.history(SYMBOL, [100.0] * 40, interval="5m", interval_ms=FIVE)
    s.seed_candles(r, hours)
    s.seed_candles(r, fives)
    cfg = json.loads(s.config(interval="5m", strategy="ema_cross_trend"))
    cfg["params"] = {"fast_period": 2, "slow_period": 3, "trend_interval": "1h", "trend_period": 2}
    s.create_bot(r, "mtf", json.dumps(cfg))
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1"))
    proc.wait_for(lambda: r.hget(keys.bot("mtf"), "status") == b"running", 15, "bot running")

    assert r.smembers(keys.MARKET_SUBSCRIPTIONS) == {b"BTCUSDT:5m", b"BTCUSDT:1h"}
    assert s.text(r.hgetall(keys.MARKET_WARMUP)) == {"BTCUSDT:5m": "326", "BTCUSDT:1h": "24"}

    # the next 5m candle sees the newest 1h candle (closed before it opened)
    t = fives[-1].open_time + FIVE
    s.push_candle(r, s.candle(SYMBOL, FIVE, t, 100.0, "5m"))
    values = decided(r, t)["values"]
    assert values["trend_close"] == 109.0
    ema2 = 100.5
    for x in range(102, 110):
        ema2 += (2 / 3) * (x - ema2)
    assert abs(values["trend_ema"] - ema2) < 1e-9

    # a new 1h candle (far below) closes at the end of the current hour: the 5m candles
    # that open before then do not see it, the first one opening after does
    next_hour = hours[-1].open_time + HOUR
    s.push_candle(r, s.candle(SYMBOL, HOUR, next_hour, 50.0, "1h"))
    while t + FIVE < next_hour + HOUR:
        t += FIVE
        s.push_candle(r, s.candle(SYMBOL, FIVE, t, 100.0, "5m"))
        assert decided(r, t)["values"]["trend_close"] == 109.0
    t += FIVE
    s.push_candle(r, s.candle(SYMBOL, FIVE, t, 110.0, "5m"))  # the fast EMA crosses above
    entry = decided(r, t)
    assert entry["values"]["trend_close"] == 50.0
    assert entry["values"]["fast_ema"] > entry["values"]["slow_ema"]
    # a crossing against the 1h trend is not an entry
    assert entry["signal"] == "HOLD" and "crossed above against the trend" in entry["reason"]
    assert not s.intents(r)
