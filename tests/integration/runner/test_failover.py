"""Two runner processes: leases spread the bots, a killed runner's bots are adopted with
their books, and a paused (zombie) runner is fenced off by the epoch."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import redis as sync_redis

from shared import keys
from shared.messages import Side
from tests.integration.runner import support as s
from tests.integration.runner.test_runner_lifecycle import LEASE_MS, runner
from tests.support.processes import BotfleetProcess

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
BOTS = [f"bot{i}" for i in range(8)]
SYMBOL_OF = {b: SYMBOLS[i % 3] for i, b in enumerate(BOTS)}


def owners(r: sync_redis.Redis) -> dict[str, str]:
    return {b: (r.hget(keys.bot(b), "owner") or b"").decode() for b in BOTS}


def spread(r: sync_redis.Redis) -> bool:
    """Both runners hold bots, within two of each other (claims up to the fleet average,
    idle bots above it handed over)."""
    held = Counter(owners(r).values())
    return set(held) == {"ra", "rb"} and max(held.values()) - min(held.values()) <= 2


def adopted(r: sync_redis.Redis, lost: list[str], previous: str) -> bool:
    """rb holds every bot and has finished starting the ones it adopted (their claim
    sets ``owner`` first; the commit that follows says where they came from)."""
    return set(owners(r).values()) == {"rb"} and all(
        r.hget(keys.bot(b), "status_reason") == f"adopted from {previous}".encode() for b in lost
    )


def start_fleet(
    r: sync_redis.Redis, url: str, tmp_path: Path, processes: list[BotfleetProcess]
) -> tuple[dict[str, float], dict[str, int]]:
    """Eight bots over three symbols on two runners, each bot with an open position."""
    ups: dict[str, float] = {}
    next_open: dict[str, int] = {}
    for symbol in SYMBOLS:
        closes, ups[symbol] = s.falling_then_up()
        hist = s.history(symbol, closes)
        s.seed_candles(r, hist)
        next_open[symbol] = hist[-1].open_time + s.MINUTE
    processes.append(runner(tmp_path, url, "ra"))
    processes.append(runner(tmp_path, url, "rb"))
    # Both runners up before the bots exist: on a busy machine one interpreter may start
    # seconds after the other, and a runner alone rightly claims every bot.
    s.wait(lambda: s.health(r, "ra") and s.health(r, "rb"), 30, "both runners beating")
    for bot_id in BOTS:
        s.create_bot(r, bot_id, s.config(SYMBOL_OF[bot_id]))
    s.wait(
        lambda: all(r.hget(keys.bot(b), "status") == b"running" for b in BOTS) and spread(r),
        20,
        "all running, spread over both runners",
    )
    for symbol in SYMBOLS:
        s.push_candle(r, s.candle(symbol, s.MINUTE, next_open[symbol], ups[symbol]))
    buys = s.wait(lambda: len(s.intents(r)) == len(BOTS) and s.intents(r), 5, "one entry per bot")
    for intent in buys:
        s.fill(r, intent, ups[intent.symbol])
    s.wait(lambda: all(r.exists(keys.bot_position(b)) for b in BOTS), 5, "positions")
    return ups, next_open


def test_claims_spread_and_a_killed_runner_bots_are_adopted_with_books_intact(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    ups, next_open = start_fleet(r, clean_redis_url, tmp_path, processes)
    held = Counter(owners(r).values())
    assert set(held) == {"ra", "rb"} and max(held.values()) - min(held.values()) <= 2, held
    before = {b: (r.hgetall(keys.bot_position(b)), r.hgetall(keys.bot_stats(b))) for b in BOTS}
    epochs = {b: int(r.hget(keys.bot(b), "epoch")) for b in BOTS}
    victim = processes[0]
    lost = [b for b, o in owners(r).items() if o == "ra"]

    victim.kill()
    killed_at = time.monotonic()
    s.wait(lambda: set(owners(r).values()) == {"rb"}, LEASE_MS / 1000 + 3, "adoption by rb")
    assert time.monotonic() - killed_at < LEASE_MS / 1000 + 3
    s.wait(lambda: adopted(r, lost, "ra"), 10, "adopted bots started by rb")
    for b in BOTS:
        assert r.hget(keys.bot(b), "status") == b"running"
        assert (r.hgetall(keys.bot_position(b)), r.hgetall(keys.bot_stats(b))) == before[b]
    for b in lost:
        assert int(r.hget(keys.bot(b), "epoch")) == epochs[b] + 1
        assert r.hget(keys.bot(b), "status_reason") == b"adopted from ra"

    # Another entry signal: every bot is in position, so nobody buys twice.
    for symbol in SYMBOLS:
        s.push_candle(r, s.candle(symbol, s.MINUTE, next_open[symbol] + s.MINUTE, ups[symbol] + 3))
    # Every bot has decided that candle (an entry would have gone out before its record).
    s.wait(
        lambda: all(s.decided(r, [b], next_open[SYMBOL_OF[b]] + s.MINUTE) for b in BOTS),
        10,
        "the new candle decided by every bot",
    )
    per_bot = Counter(i.bot_id for i in s.intents(r) if i.side is Side.BUY)
    assert per_bot == dict.fromkeys(BOTS, 1)


def test_a_paused_runner_is_fenced_by_the_epoch_and_emits_nothing_after_adoption(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    ups, _ = start_fleet(r, clean_redis_url, tmp_path, processes)
    zombie = processes[0]
    held = [b for b, o in owners(r).items() if o == "ra"]
    old_epochs = {b: int(r.hget(keys.bot(b), "epoch")) for b in held}
    os.kill(zombie.pid, signal.SIGSTOP)
    try:
        s.wait(lambda: set(owners(r).values()) == {"rb"}, LEASE_MS / 1000 + 3, "adoption by rb")
        # rb reads the ticks below only for bots it has finished starting.
        s.wait(lambda: adopted(r, held, "ra"), 10, "adopted bots started by rb")
        # While paused, every price falls through the stop: only the new owner may exit.
        seen = len(s.intents(r))
        for symbol in SYMBOLS:
            s.push_tick(r, symbol, ups[symbol] * 0.9)
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
    resumed_ms = int(time.time() * 1000)
    exits = s.wait(
        lambda: len(s.intents(r)) >= seen + len(BOTS) and s.intents(r)[seen:], 10, "exits"
    )
    # The resumed zombie had its chance to act on the same ticks: it has let go of every
    # bot, and a read round of its own ended after the one that met the ticks.
    s.wait(lambda: s.health(r, "ra").get("bots") == "0", 10, "the zombie holds nothing")
    s.rounds_done(r, "ra", resumed_ms)
    exits = s.intents(r)[seen:]
    assert Counter(i.bot_id for i in exits) == dict.fromkeys(BOTS, 1)
    for intent in exits:
        assert intent.side is Side.SELL and intent.is_exit
        if intent.bot_id in held:
            assert intent.epoch == old_epochs[intent.bot_id] + 1
            assert int(r.hget(keys.bot(intent.bot_id), "epoch")) == intent.epoch
    zombie.wait_for(lambda: '"bot.lease_lost"' in zombie.log_text(), 5, "zombie lets go")
    assert set(owners(r).values()) == {"rb"}
