"""Issue 16, end to end: bots with long warm-ups (RSI 200: 4,795 candles; EMA 50/200:
2,504) are served, not refused, and a bot killed with its runner (kill -9) and adopted
by another runner decides exactly as its uninterrupted twin, with indicator values
within 1e-9 relative, over a hundred candles and more.

Real processes: the exchange simulator at 240x (a 1m candle every quarter second, its
history years deep), ingestion (which backfills each series as deep as its bots
declare), a paper gateway, and runners. The bots are created before ingestion runs, so
the first runner shows them waiting for their warm-up. Twins: ``x-*`` on runner ``ra``
(capacity 2), ``u-*`` on ``rb`` (capacity 2, started after them, each seeded at its own
moment). ``ra`` is killed; ``rc``, started after the kill, adopts the ``x-*`` bots: it
decides the candles they missed from a fresh replay and then runs them on its own
computation, seeded at its claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import keys
from shared.strategies import create_strategy
from tests.e2e.market_fleet import MarketFleet, bot_config
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient, start_sim

SPEED = 240.0
STRATEGIES = {
    "rsi": ("rsi", {"period": 200, "oversold": 49.5, "overbought": 50.5}),
    "ema": ("ema_cross", {"fast_period": 50, "slow_period": 200}),
}
AFTER = 100  # candles decided by the adopted bots after the kill


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimClient]:
    client = start_sim(tmp_path / "sim", speed=SPEED, symbols=("BTCUSDT",))
    yield client
    client.stop()


def relative(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def test_long_warmup_bots_adopted_after_kill_9_decide_as_their_uninterrupted_twins(
    sim: SimClient, clean_redis_url: str, tmp_path: Path, processes: list[BotfleetProcess]
) -> None:
    fleet = MarketFleet(sim, clean_redis_url, tmp_path, processes)
    try:
        run(fleet)
    except BaseException:
        print(fleet.logs())
        raise


def run(fleet: MarketFleet) -> None:
    r = fleet.r
    warmup = {k: create_strategy(*v).warmup_candles for k, v in STRATEGIES.items()}
    assert warmup == {"rsi": 4795, "ema": 2504}
    fleet.start_gateway()
    fleet.start_runner("ra", capacity=2)
    fleet.wait(lambda: fleet.healthy("runner", "ra"), 30, "ra beating")
    for kind, (name, params) in STRATEGIES.items():
        fleet.create_bot(f"x-{kind}", bot_config(name, params))
    # No candle yet: ra does not start them on a short seed, it says why they wait.
    reason = fleet.wait(
        lambda: fleet.bot("x-rsi").get("status_reason", "").startswith("waiting for warm-up"),
        20,
        "x-rsi waiting for its warm-up",
    )
    assert reason
    assert "of 4795 closed candles of BTCUSDT 1m" in fleet.bot("x-rsi")["status_reason"]
    assert fleet.bot("x-rsi")["status"] == "starting"
    assert int(r.hget(keys.MARKET_WARMUP, "BTCUSDT:1m")) == 4795

    fleet.start_ingestion()
    fleet.wait(
        lambda: all(fleet.bot(f"x-{k}").get("status") == "running" for k in STRATEGIES),
        90,
        "x bots running once ingestion has backfilled their warm-up",
    )
    assert r.llen(keys.candles("BTCUSDT", "1m")) >= 4795
    assert {fleet.bot(f"x-{k}")["owner"] for k in STRATEGIES} == {"ra"}

    # Created before rb runs: ra (full) sees bots to claim, so it hands none over.
    for kind, (name, params) in STRATEGIES.items():
        fleet.create_bot(f"u-{kind}", bot_config(name, params))
    fleet.start_runner("rb", capacity=2)
    fleet.wait(
        lambda: all(fleet.bot(f"u-{k}").get("status") == "running" for k in STRATEGIES),
        60,
        "u bots running on rb",
    )
    assert {fleet.bot(f"u-{k}")["owner"] for k in STRATEGIES} == {"rb"}

    def common(kind: str) -> set[int]:
        return set(fleet.decisions(f"x-{kind}")) & set(fleet.decisions(f"u-{kind}"))

    fleet.wait(lambda: all(len(common(k)) >= 10 for k in STRATEGIES), 60, "twins deciding")

    fleet.procs["ra"].kill()  # kill -9: no lease let go, no state written
    killed_at = max(max(fleet.decisions(f"x-{k}")) for k in STRATEGIES)
    fleet.start_runner("rc", capacity=2)
    fleet.wait(
        lambda: all(
            fleet.bot(f"x-{k}").get("owner") == "rc"
            and fleet.bot(f"x-{k}").get("status_reason") == "adopted from ra"
            for k in STRATEGIES
        ),
        60,
        "x bots adopted by rc",
    )
    minute = 60_000
    fleet.wait(
        lambda: all(
            max(fleet.decisions(f"x-{k}")) >= killed_at + AFTER * minute for k in STRATEGIES
        ),
        120,
        f"{AFTER} candles decided after the kill",
    )

    for kind in STRATEGIES:
        x, u = fleet.decisions(f"x-{kind}"), fleet.decisions(f"u-{kind}")
        after = sorted(t for t in x if t > killed_at)
        # every candle after the kill was decided by the adopter: missed ones caught up
        assert after == list(range(killed_at + minute, after[-1] + 1, minute)), kind
        both = sorted(set(x) & set(u))
        assert len([t for t in both if t > killed_at]) >= AFTER - 5, kind
        worst, different = 0.0, []
        for t in both:
            if x[t]["signal"] != u[t]["signal"]:
                different.append(t)
            xv, uv = json.loads(x[t]["values"]), json.loads(u[t]["values"])
            assert xv.keys() == uv.keys() and xv, (kind, t, xv, uv)
            worst = max(worst, *(relative(xv[k], uv[k]) for k in xv))
        assert not different, f"{kind}: twins decided differently on candles {different}"
        assert worst <= 1e-9, f"{kind}: indicator values differ by {worst:.2e}"
        acted = sum(x[t]["signal"] != "HOLD" for t in both)
        print(f"{kind}: {len(both)} candles compared ({acted} BUY/SELL), worst {worst:.1e}")
