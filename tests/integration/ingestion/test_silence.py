"""Ingestion notices a silent market connection within twice the stream's actual
update period, whatever that period is (the simulator's ``--kline-update-ms``), and
reconnects and fills the gap as after any disconnect.

The silence is a true half-open connection (the simulator's ``half_open`` fault: the
socket stays open, no frame, no ping, no pong), which only the silence watch can see.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from shared import keys
from tests.integration.ingestion.market import Market
from tests.support.sim import SimClient, start_sim


def _flushed(redis_url: str, db: int) -> str:
    base, _, _ = redis_url.rpartition("/")
    url = f"{base}/{db}"
    client = sync_redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def started(redis_url: str, tmp_path: Path) -> Iterator[tuple[SimClient, Market]]:
    sims: list[SimClient] = []
    markets: list[Market] = []

    def start(update_ms: int) -> tuple[SimClient, Market]:
        sim = start_sim(
            tmp_path, speed=1.0, symbols=["BTCUSDT"],
            extra_args=["--kline-update-ms", str(update_ms)],
        )  # fmt: skip
        sims.append(sim)
        market = Market(sim, _flushed(redis_url, 6), tmp_path, ("BTCUSDT",))
        markets.append(market)
        return sim, market

    yield start  # type: ignore[misc]
    for market in markets:
        market.stop_all()
    for sim in sims:
        sim.stop()


def _silent_events(market: Market) -> list[dict[str, object]]:
    out = []
    for line in market.active.log_text().splitlines():
        if '"ws.silent"' in line:
            out.append(json.loads(line))
    return out


@pytest.mark.parametrize("update_ms", [1000, 2000])
def test_silence_is_noticed_within_twice_the_update_period(started: object, update_ms: int) -> None:
    sim, market = started(update_ms)  # type: ignore[operator]
    market.subscribe("BTCUSDT")
    market.active = market.start("ing-silence")
    market.active_name = "ing-silence"
    # Live, with the period measured: the price changed on several updates.
    seen: set[bytes] = set()
    market.active.wait_for(
        lambda: len(seen) >= 6 or bool(seen.add(market.r.get(keys.price("BTCUSDT")) or b"")),
        30,
        "several live price updates",
    )
    before = market.figure("ing-silence", "reconnects")
    sim.half_open()
    market.active.wait_for(lambda: bool(_silent_events(market)), 30, "the silence noticed")
    (event, *_) = _silent_events(market)
    period_s = update_ms / 1000
    # the service's own measure of the silence when it gave the session up
    assert float(event["silent_s"]) < 2 * period_s  # type: ignore[arg-type]
    assert float(event["threshold_s"]) <= 1.5 * period_s * 1.25  # type: ignore[arg-type]
    # and it reconnected, and goes on (a new connection is not half-open)
    market.active.wait_for(
        lambda: market.figure("ing-silence", "reconnects") > before, 20, "the reconnect"
    )
    price = market.r.get(keys.price("BTCUSDT"))
    deadline = time.monotonic() + 20
    while market.r.get(keys.price("BTCUSDT")) == price and time.monotonic() < deadline:
        time.sleep(0.1)
    assert market.r.get(keys.price("BTCUSDT")) != price
