"""Desired state is the truth for configs too: a runner picks up a changed ``config``
through its reconcile pass when the commands that announced it were lost."""

from __future__ import annotations

from pathlib import Path

import redis as sync_redis

from shared import keys
from shared.bots import Desired
from shared.messages import Side
from tests.integration.runner import support as s
from tests.integration.runner.test_runner_lifecycle import runner
from tests.support.processes import BotfleetProcess


def field(r: sync_redis.Redis, name: str) -> str:
    return (r.hget(keys.bot("b1"), name) or b"").decode()


def seed(r: sync_redis.Redis, symbol: str) -> tuple[int, float]:
    """A fresh falling history; returns the next open time and a close that buys."""
    closes, up = s.falling_then_up()
    hist = s.history(symbol, closes)
    s.seed_candles(r, hist)
    return hist[-1].open_time + s.MINUTE, up


def start_on_btc(
    r: sync_redis.Redis, url: str, tmp_path: Path, processes: list[BotfleetProcess]
) -> tuple[int, float]:
    seed(r, "BTCUSDT")
    eth = seed(r, "ETHUSDT")
    s.create_bot(r, "b1", s.config("BTCUSDT"))
    processes.append(proc := runner(tmp_path, url, "r1"))
    proc.wait_for(lambda: field(r, "status") == "running", 15, "bot running")
    assert r.sismember(keys.MARKET_SUBSCRIPTIONS, "BTCUSDT:1m")
    return eth


def trades_eth(r: sync_redis.Redis, eth: tuple[int, float]) -> None:
    open_time, up = eth
    s.wait(lambda: r.sismember(keys.MARKET_SUBSCRIPTIONS, "ETHUSDT:1m"), 5, "ETH subscribed")
    s.wait(lambda: not r.sismember(keys.MARKET_SUBSCRIPTIONS, "BTCUSDT:1m"), 5, "BTC withdrawn")
    s.push_candle(r, s.candle("ETHUSDT", s.MINUTE, open_time, up))
    [buy] = s.wait(lambda: s.intents(r), 5, "entry on the new symbol")
    assert buy.symbol == "ETHUSDT" and buy.side is Side.BUY and buy.bot_id == "b1"


def test_bot_stopped_reconfigured_and_started_with_every_command_lost_runs_the_new_config(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    eth = start_on_btc(r, clean_redis_url, tmp_path, processes)
    # The API's writes, without any command on stream:bot-commands.
    r.hset(keys.bot("b1"), "desired", Desired.STOPPED.value)
    s.wait(lambda: field(r, "status") == "stopped", 5, "stopped by reconcile")
    s.wait(lambda: not r.exists(keys.bot_lease("b1")), 5, "lease released")
    r.hset(keys.bot("b1"), "config", s.config("ETHUSDT"))
    r.hset(keys.bot("b1"), "desired", Desired.RUNNING.value)
    s.wait(lambda: field(r, "status") == "running" and field(r, "epoch") == "2", 5, "restarted")
    trades_eth(r, eth)


def test_held_bot_whose_stored_config_changed_is_reloaded_by_reconcile(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    """Stop, config change and start all happened between two reconcile passes and
    every command was lost: the runner still holds the bot with its old config."""
    r = sync_redis_client
    eth = start_on_btc(r, clean_redis_url, tmp_path, processes)
    r.hset(keys.bot("b1"), "config", s.config("ETHUSDT"))
    s.wait(lambda: field(r, "epoch") == "2", 5, "bot claimed again with the new config")
    assert field(r, "owner") == "r1" and field(r, "status") == "running"
    trades_eth(r, eth)
