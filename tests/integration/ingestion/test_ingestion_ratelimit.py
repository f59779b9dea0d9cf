"""A 418 answer to ingestion's backfill pauses every process through the fleet's shared
weight budget (``shared/ratelimit.py``), and the backfill completes after Retry-After.

The simulator runs with a low weight limit and bans after one refused request
(``--weight-limit``, ``--ban-after``); the test spends the IP's weight itself, as
another user of the same address would, until the simulator bans the address, then
subscribes a new symbol, whose history backfill is answered 418.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis as sync_redis

from shared import keys
from shared.ratelimit import BudgetExhausted, WeightBudget
from shared.redis import create_redis
from tests.integration.ingestion.market import INTERVAL, Market, OtherClient
from tests.support.sim import SimClient, start_sim

# One exchange minute = 2 s; the first ban (2 exchange minutes) = 4 s. The fleet budget
# counts weight per local minute (it assumes exchange time = wall time), so the test
# keeps the simulator's per-minute counts out of it (see the sleep below).
SPEED = 30.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(
        tmp_path_factory.mktemp("sim-limited"),
        speed=SPEED,
        extra_args=["--weight-limit", "300", "--ban-after", "1"],
    )
    yield client
    client.stop()


def _refusals(log: str) -> list[int]:
    out = []
    for line in log.splitlines():
        if '"ratelimit.refused"' in line:
            out.append(int(json.loads(line)["status"]))
    return out


def _fleet_budget_refuses(redis_url: str) -> bool:
    async def attempt() -> bool:
        redis = create_redis(redis_url)
        try:
            await WeightBudget(redis).try_reserve(1)
            return False
        except BudgetExhausted:
            return True
        finally:
            await redis.aclose()

    return asyncio.run(attempt())


def test_a_418_to_the_backfill_pauses_every_process_until_retry_after_then_it_completes(
    sim: SimClient, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = redis_url.rpartition("/")[0] + "/2"
    sync_redis.Redis.from_url(url).flushdb()
    other = OtherClient(sim.ws_url, [f"ethusdt@kline_{INTERVAL}"]).start()
    market = Market(sim, url, tmp_path_factory.mktemp("limited"), ("BTCUSDT",))
    market.subscribe("BTCUSDT")
    proc = market.start("ing-l")
    market.active, market.active_name = proc, "ing-l"
    try:
        market.wait_caught_up(proc, "BTCUSDT live")
        # Spend the address's weight until the simulator bans it (418).
        statuses = []
        with httpx.Client(base_url=sim.rest_url, timeout=10) as http:
            while not statuses or statuses[-1] != 418:
                statuses.append(http.get("/api/v3/exchangeInfo").status_code)
                assert len(statuses) < 100, statuses
        ours = len([s for s in statuses if s in (418, 429)])
        # The ban outlasts the exchange minute it was earned in: wait for the next one,
        # so the weight the simulator reports (X-MBX-USED-WEIGHT-1M) is ingestion's own.
        time.sleep(60 / SPEED + 0.1)
        market.subscribe("ETHUSDT")  # its history backfill meets the ban
        market.symbols = ("BTCUSDT", "ETHUSDT")
        # Only Redis is read while the ban lasts: a request from here would be refused too.
        proc.wait_for(lambda: market.r.exists(keys.RATELIMIT_BAN) == 1, 10, "the fleet pause")
        banned_until = int(market.r.get(keys.RATELIMIT_BAN) or 0)
        assert banned_until > time.time() * 1000
        assert _fleet_budget_refuses(url), "another process could still reserve weight"
        time.sleep(max(0.0, banned_until / 1000 - time.time()) + 0.2)
        market.wait_caught_up(proc, "ETHUSDT backfilled after the pause")
        market.assert_exactly_once_in_order_no_gap_equal_to_the_sim()
        assert market.fresh_health("ing-l")["rest_rate_limited"] == "1"
        refused = _refusals(sim.process.log_text())
        assert len(refused) == ours + 1, f"ingestion was refused {len(refused) - ours} times"
        assert not _fleet_budget_refuses(url)
    except BaseException:
        print(market.logs(), f"\n===== simulator =====\n{sim.process.log_text()[-3000:]}")
        raise
    finally:
        other.stop()
        market.stop_all()
