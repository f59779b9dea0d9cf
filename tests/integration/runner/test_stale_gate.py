"""The stale-data gate (issue 10) with a real runner process and real Redis; the test
plays ingestion (candles, ticks, ``market:last-update``) and the gateway (fills).

A 1-second interval and a 2-second grace make data stale 3 s after its last update."""

from __future__ import annotations

import time
from pathlib import Path

import redis as sync_redis

from shared import keys
from shared.exchange_clock import ExchangeClock
from shared.messages import Candle, Event, Side, decode_as
from tests.integration.runner import support as s
from tests.integration.runner.test_runner_lifecycle import runner
from tests.support.processes import BotfleetProcess

SYMBOL = "BTCUSDT"
SECOND = 1000
GRACE_S = 2
# The exchange-clock test's grace: its history must still be fresh when the bot is
# claimed, on a machine busy enough to delay the claim by a second or two.
CLOCK_GRACE_S = 4


def bot_field(r: sync_redis.Redis, field: str) -> str:
    return (r.hget(keys.bot("b1"), field) or b"").decode()


def log_entries(r: sync_redis.Redis) -> list[dict[str, str]]:
    return [s.text(f) for _, f in r.xrange(keys.bot_log("b1"))]


def fresh_run(closes: list[float]) -> list[Candle]:
    """Closed 1s candles whose last one closed just now."""
    return s.history(SYMBOL, closes, interval="1s", interval_ms=SECOND)


def test_stale_data_pauses_entries_but_not_exits_and_trading_resumes_with_fresh_data(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1", "--stale-grace", str(GRACE_S)))
    # The runner is up before the history is written, so the history is still fresh
    # when the bot is claimed however long the interpreter took to start.
    s.wait(lambda: s.health(r, "r1"), 30, "runner beating")
    closes, up = s.falling_then_up()
    hist = fresh_run(closes)
    s.seed_candles(r, hist)
    s.push_tick(r, SYMBOL, closes[-1])
    s.create_bot(r, "b1", s.config(SYMBOL, "1s"))
    proc.wait_for(lambda: bot_field(r, "status") == "running", 15, "bot running")

    # Fresh data: the entry signal is taken.
    last = s.candle(SYMBOL, SECOND, hist[-1].open_time + SECOND, up, "1s")
    s.push_tick(r, SYMBOL, up)
    s.push_candle(r, last)
    [buy] = s.wait(lambda: s.intents(r), 5, "entry intent")
    assert buy.side is Side.BUY and bot_field(r, "stale") == ""
    s.fill(r, buy, up)
    s.wait(lambda: r.hget(keys.bot_position("b1"), "qty"), 5, "position")

    # The feed freezes: within one interval plus the grace (and a housekeeping pass)
    # the bot says its data is stale, in its hash, its log and stream:events.
    s.wait(lambda: bot_field(r, "stale") == SYMBOL, 1 + GRACE_S + 3, "stale flag")
    assert "stale data for BTCUSDT" in bot_field(r, "status_reason")
    assert bot_field(r, "status") == "running"
    assert any(e["kind"] == "stale" for e in log_entries(r))
    kinds = [decode_as(f, Event) for _, f in r.xrange(keys.EVENTS)]
    assert any(e.kind == "bot_stale" and e.bot_id == "b1" for e in kinds)

    # An exit on a tick still goes out while the data is stale (the candles are).
    stop_price = up * 0.9
    s.push_tick(r, SYMBOL, stop_price)
    sell = s.wait(lambda: s.intents(r)[1:], 5, "stop-loss exit while stale")[0]
    assert sell.side is Side.SELL and sell.is_exit
    s.fill(r, sell, stop_price)
    s.wait(lambda: not r.exists(keys.bot_position("b1")), 5, "flat again")
    assert bot_field(r, "stale") == SYMBOL

    # Late candles (closed long ago, as after a frozen feed) with a new entry signal:
    # no entry, and the log says why.
    late = [
        s.candle(SYMBOL, SECOND, last.open_time + SECOND, stop_price - 1, "1s"),
        s.candle(SYMBOL, SECOND, last.open_time + 2 * SECOND, stop_price + 2, "1s"),
    ]
    old_enough = late[-1].close_time + (1 + GRACE_S) * SECOND + 1000
    s.wait(lambda: time.time() * 1000 >= old_enough, 10, "the late candles old enough")
    for c in late:
        s.push_candle(r, c)
    pushed_ms = int(time.time() * 1000)
    s.wait(
        lambda: any("entry skipped: stale data for BTCUSDT" in e["reason"] for e in log_entries(r)),
        5,
        "entry skipped on stale data",
    )
    s.wait(lambda: s.decided(r, ["b1"], late[-1].open_time), 5, "both late candles decided")
    s.rounds_done(r, "r1", pushed_ms)
    assert len(s.intents(r)) == 2 and bot_field(r, "stale") == SYMBOL

    # Fresh data returns (prices and candles): the bot resumes by itself and trades.
    s.push_tick(r, SYMBOL, stop_price + 2)
    for c in fresh_run([stop_price - 6, stop_price - 3]):  # down, then back above 30
        assert c.open_time > late[-1].open_time
        s.push_candle(r, c)
    entry = s.wait(lambda: s.intents(r)[2:], 5, "entry on fresh data")[0]
    assert entry.side is Side.BUY
    s.wait(lambda: bot_field(r, "stale") == "", 3, "fresh again")
    assert bot_field(r, "status_reason") == ""
    assert any(e["kind"] == "fresh" for e in log_entries(r))


def test_data_age_is_measured_on_the_exchange_clock_of_market_clock(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    """The exchange (a simulator, say) runs an hour ahead of this machine: its candles
    are stamped an hour in the future. A frozen feed is still seen as stale, because
    the age is taken on the exchange's clock as ingestion samples it."""
    r = sync_redis_client
    local = int(time.time() * 1000)
    clock = ExchangeClock(exchange_ms=local + 3_600_000, local_ms=local)
    r.hset(keys.MARKET_CLOCK, mapping=clock.to_fields())
    grace = CLOCK_GRACE_S
    processes.append(proc := runner(tmp_path, clean_redis_url, "r1", "--stale-grace", str(grace)))
    # The runner is up before the history is written: the history is fresh for one
    # interval plus the grace, however long an interpreter takes to start.
    s.wait(lambda: s.health(r, "r1"), 30, "runner beating")
    closes, _ = s.falling_then_up()
    exchange_now = clock.now(int(time.time() * 1000))
    s.seed_candles(
        r, s.history(SYMBOL, closes, interval="1s", interval_ms=SECOND, end=exchange_now)
    )
    s.create_bot(r, "b1", s.config(SYMBOL, "1s"))
    proc.wait_for(lambda: bot_field(r, "status") == "running", 15, "bot running")
    assert bot_field(r, "stale") == ""  # fresh on the exchange's clock
    s.wait(lambda: bot_field(r, "stale") == SYMBOL, 1 + grace + 3, "stale on the exchange clock")
