"""START commands handled in batches by two runner processes at once: both read every
command and race for the same bots; the lease decides, so every bot runs, claimed
exactly once (epoch 1), and the runner that lost a chunk goes on to the next."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import redis as sync_redis

from shared import keys
from shared.messages import CommandAction
from tests.integration.runner import support as s
from tests.support.processes import BotfleetProcess

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def test_two_runners_racing_for_a_thousand_starts_claim_each_bot_once(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    for symbol in SYMBOLS:
        s.seed_candles(r, s.history(symbol, [100.0 - i for i in range(30)]))
    # A reconcile pass only every 50 s: after the first (which finds the marker bot of
    # each runner's start running), the starts below are claimed by commands alone.
    s.create_bot(r, "marker", s.config(SYMBOLS[0]), start=False)
    r.hset(keys.bot("marker"), "desired", "running")
    env = {"BOTFLEET_REDIS_URL": clean_redis_url}
    for name in ("ra", "rb"):
        args = ["runner", "--instance", name, "--lease-ms", "60000", "--reconcile-interval", "50"]
        processes.append(BotfleetProcess(args, tmp_path / f"{name}.log", env=env).start())
    s.wait(lambda: r.hget(keys.bot("marker"), "status") == b"running", 20, "a first pass")
    # Both have read the fleet (each other's heartbeat) in their first pass.
    s.wait(lambda: all(r.hget(keys.health("runner", n), "ts") for n in ("ra", "rb")), 10, "beats")
    ids = [f"bot{i}" for i in range(1000)]
    for i, bot_id in enumerate(ids):
        s.create_bot(r, bot_id, s.config(SYMBOLS[i % 2]), start=False)
    pipe = r.pipeline(transaction=False)
    for bot_id in ids:
        pipe.hset(keys.bot(bot_id), "desired", "running")
    pipe.execute()
    for bot_id in ids:
        s.command(r, bot_id, CommandAction.START)

    def fields(name: str) -> list[bytes | None]:
        pipe = r.pipeline(transaction=False)
        for bot_id in ids:
            pipe.hget(keys.bot(bot_id), name)
        return list(pipe.execute())

    s.wait(lambda: all(v == b"running" for v in fields("status")), 30, "1,000 bots running")
    assert set(fields("epoch")) == {b"1"}  # each bot claimed once: the lease decided
    owners = Counter(fields("owner"))
    assert set(owners) <= {b"ra", b"rb"} and sum(owners.values()) == len(ids)
