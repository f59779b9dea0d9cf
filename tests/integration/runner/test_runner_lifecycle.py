"""One runner process against a real redis-server; the test plays ingestion (candles,
ticks) and the gateway (execution reports)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis as sync_redis

from shared import keys
from shared.messages import CommandAction, Side
from tests.integration.runner import support as s
from tests.support.processes import BotfleetProcess

LEASE_MS = 2000


def runner(tmp_path: Path, url: str, name: str, *extra: str) -> BotfleetProcess:
    args = [
        "runner",
        "--instance",
        name,
        "--lease-ms",
        str(LEASE_MS),
        "--reconcile-interval",
        "0.3",
        "--block-ms",
        "100",
        *extra,
    ]
    return BotfleetProcess(args, tmp_path / f"{name}.log", env={"BOTFLEET_REDIS_URL": url}).start()


@pytest.fixture
def r(sync_redis_client: sync_redis.Redis) -> sync_redis.Redis:
    return sync_redis_client


def test_bot_enters_on_signal_exits_on_stop_loss_and_keeps_its_books(
    r: sync_redis.Redis, clean_redis_url: str, tmp_path: Path, processes: list[BotfleetProcess]
) -> None:
    closes, up = s.falling_then_up()
    hist = s.history("BTCUSDT", closes)
    s.seed_candles(r, hist)
    s.create_bot(r, "b1", s.config())
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1"))
    proc.wait_for(lambda: r.hget(keys.bot("b1"), "status") == b"running", 15, "bot running")
    assert r.sismember(keys.MARKET_SUBSCRIPTIONS, "BTCUSDT:1m")
    assert r.hget(keys.bot("b1"), "owner") == b"r1"

    s.push_candle(r, s.candle("BTCUSDT", s.MINUTE, hist[-1].open_time + s.MINUTE, up))
    [buy] = s.wait(lambda: s.intents(r), 5, "entry intent")
    assert buy.side is Side.BUY and buy.epoch == 1 and buy.quote_quantity == 100
    assert r.hget(keys.bot_pending("b1"), "intent_id") == buy.intent_id.encode()
    s.fill(r, buy, up)
    s.wait(lambda: r.hget(keys.bot_position("b1"), "qty"), 5, "position")
    assert not r.exists(keys.bot_pending("b1"))
    stats = s.text(r.hgetall(keys.bot_stats("b1")))
    assert abs(float(stats["fees"]) - 0.1) < 1e-9

    s.push_tick(r, "BTCUSDT", up * 0.9)  # below the 5% stop
    sell = s.wait(lambda: s.intents(r)[1:], 5, "stop-loss intent")[0]
    assert sell.side is Side.SELL and sell.is_exit and "STOP_LOSS" in sell.reason
    s.fill(r, sell, up * 0.9)
    s.wait(lambda: r.xlen(keys.bot_trades("b1")), 5, "round trip")
    assert not r.exists(keys.bot_position("b1"))
    stats = s.text(r.hgetall(keys.bot_stats("b1")))
    assert (stats["trades"], stats["losses"]) == ("1", "1")
    assert float(stats["realized_pnl"]) < 0
    kinds = [f[b"kind"] for _, f in r.xrange(keys.bot_log("b1"))]
    assert b"entry" in kinds and b"exit" in kinds and b"fill" in kinds

    s.command(r, "b1", CommandAction.STOP)
    proc.wait_for(lambda: r.hget(keys.bot("b1"), "status") == b"stopped", 5, "bot stopped")
    assert not r.exists(keys.bot_lease("b1"))
    proc.wait_for(
        lambda: not r.sismember(keys.MARKET_SUBSCRIPTIONS, "BTCUSDT:1m"), 5, "unsubscribed"
    )
