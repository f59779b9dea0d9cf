"""The example plugin strategy (``examples/botfleet-donchian``, installed in the test
venv by ``make install``) trades in a real runner process fed whole candles: a
breakout above the channel's high enters, the ATR stop-loss (``stop_loss_atr``, in the
ATR its signals carry) is set at entry and exits. The test plays ingestion and the
gateway, as the runner's own integration tests do."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import redis as sync_redis

from shared import keys
from shared.messages import Candle, Side
from shared.strategies.ranges import atr
from tests.integration.runner import support as s
from tests.support.processes import BotfleetProcess


def runner(tmp_path: Path, url: str, name: str) -> BotfleetProcess:
    args = ["runner", "--instance", name, "--lease-ms", "2000", "--reconcile-interval", "0.3"]
    args += ["--block-ms", "100"]
    return BotfleetProcess(args, tmp_path / f"{name}.log", env={"BOTFLEET_REDIS_URL": url}).start()


@pytest.fixture
def r(sync_redis_client: sync_redis.Redis) -> sync_redis.Redis:
    return sync_redis_client


def bar(open_time: int, close: float, high: float, low: float) -> Candle:
    return Candle(
        symbol="BTCUSDT",
        interval="1m",
        open_time=open_time,
        close_time=open_time + s.MINUTE - 1,
        open=Decimal(str(close)),
        high=Decimal(str(high)),
        low=Decimal(str(low)),
        close=Decimal(str(close)),
        volume=Decimal(1),
    )


def test_a_plugin_strategy_enters_on_whole_candles_and_exits_on_its_atr_stop(
    r: sync_redis.Redis, clean_redis_url: str, tmp_path: Path, processes: list[BotfleetProcess]
) -> None:
    # 40 quiet candles oscillating in 99..101 with wicks to 98..102: the channel high is
    # 102, so a close of 100 never breaks out, whatever the close alone would say.
    now = int(time.time() * 1000)
    first = (now // s.MINUTE) * s.MINUTE - 40 * s.MINUTE
    hist = [bar(first + i * s.MINUTE, 100.0 + (1 if i % 2 else -1), 102.0, 98.0) for i in range(40)]
    s.seed_candles(r, hist)
    cfg = json.loads(s.config(strategy="donchian_breakout", stop_loss_atr="2"))
    cfg["params"] = {"entry_period": 20, "exit_period": 10}
    cfg.pop("stop_loss_pct")
    s.create_bot(r, "p1", json.dumps(cfg))
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1"))
    proc.wait_for(lambda: r.hget(keys.bot("p1"), "status") == b"running", 15, "bot running")

    breakout = bar(hist[-1].open_time + s.MINUTE, 103.0, 103.5, 100.0)
    s.push_candle(r, breakout)
    [buy] = s.wait(lambda: s.intents(r), 5, "entry intent")
    assert buy.side is Side.BUY and "103" in buy.reason and "102" in buy.reason
    candles = [*hist, breakout]
    want_atr = atr(
        np.array([float(c.high) for c in candles]),
        np.array([float(c.low) for c in candles]),
        np.array([float(c.close) for c in candles]),
        14,
    )[-1]
    s.fill(r, buy, 103.0)
    position = s.wait(lambda: s.text(r.hgetall(keys.bot_position("p1"))), 5, "position")
    stop = Decimal(position["stop_price"])
    assert abs(float(stop) - (103.0 - 2 * want_atr)) < 1e-9 * 103
    assert abs(float(position["atr"]) - want_atr) < 1e-12 * want_atr

    s.push_tick(r, "BTCUSDT", float(stop) - 0.01)
    sell = s.wait(lambda: s.intents(r)[1:], 5, "ATR stop-loss intent")[0]
    assert sell.side is Side.SELL and sell.is_exit and "STOP_LOSS" in sell.reason
