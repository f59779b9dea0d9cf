"""Two gateways reconciling the same stranded record at once (a fleet restarted
together): both read it, both find it never reached the exchange, both try to send it;
the compare-and-set lets one send and the other lose, so the simulator gets one order
and the stream one final report. The two runtimes run in this process (so the test can
make them read the record before either moves it) against a real Redis and the
simulator as a real process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from services.gateway.app import rails_from
from services.gateway.live import LiveRuntime, start_live
from services.gateway.processor import Processor
from services.gateway.rules_cache import RulesCache
from services.gateway.settings import GatewaySettings, TradingMode
from services.gateway.store import GatewayStore
from shared import keys
from shared.messages import ExecutionStatus, OrderIntent, Side
from shared.redis import connect
from tests.integration.gateway.live_support import (
    gateway_env,
    reports,
    seed_from_sim,
    sim_orders,
    start_gateway,
    strand_a_record,
)
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient, start_sim

RECV_WINDOW_MS = 1000


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    client = start_sim(tmp_path_factory.mktemp("sim-race"), speed=60.0)
    yield client
    client.stop()


async def _runtime(settings: GatewaySettings) -> tuple[LiveRuntime, Processor, Any]:
    redis = await connect(settings.redis_url)
    store = GatewayStore(redis, mode="live", instance=settings.instance)
    await store.load_scripts()
    live = await start_live(settings, store, redis)
    processor = Processor(store, RulesCache(redis), rails_from(settings), live.executor)
    return live, processor, redis


def test_two_gateways_settling_one_stranded_record_at_once_send_it_once(
    clean_redis_url: str, sim: SimClient, tmp_path: Path, processes: list[BotfleetProcess]
) -> None:
    sim.clear_faults()
    r = sync_redis.Redis.from_url(clean_redis_url)
    seed_from_sim(r, sim)
    env = gateway_env(sim, clean_redis_url, BOTFLEET_GATEWAY_RECV_WINDOW_MS=str(RECV_WINDOW_MS))
    gw = start_gateway(tmp_path, env)
    processes.append(gw)
    intent = OrderIntent(
        intent_id=f"race-bot:{time.time_ns()}:buy",
        bot_id="race-bot",
        epoch=1,
        symbol="BTCUSDT",
        side=Side.BUY,
        quantity=Decimal("0.001"),
    )
    cid = strand_a_record(r, sim, gw, intent)
    sent_at = int(r.hget(keys.order(cid), "sent_at") or 0)
    # past timestamp + recvWindow (+ the 1 s margin): "not found" now proves it never landed
    deadline = time.monotonic() + 10
    while time.time() * 1000 <= sent_at + RECV_WINDOW_MS + 1500:
        assert time.monotonic() < deadline, "the request's window never passed"
        time.sleep(0.05)

    def settings(instance: str) -> GatewaySettings:
        return GatewaySettings(
            trading_mode=TradingMode.LIVE,
            redis_url=clean_redis_url,
            binance_env="sim",
            binance_rest_url=sim.rest_url,
            binance_ws_url=sim.ws_url,
            binance_api_key=sim.api_key,
            binance_api_secret=sim.api_secret,
            instance=instance,
            gateway_use_server_time=False,
            gateway_user_stream=False,
            gateway_recv_window_ms=RECV_WINDOW_MS,
        )

    async def race() -> list[set[str]]:
        one, p1, redis1 = await _runtime(settings("gw-race-1"))
        two, p2, redis2 = await _runtime(settings("gw-race-2"))
        try:
            # both read the record (same status and rev) before either moves it
            await asyncio.gather(one.reconcile(p1), two.reconcile(p2))
            left = [set(one.reconciler.orphans), set(two.reconciler.orphans)]
            # the loser looks again later and finds the record ended
            await asyncio.gather(one.reconciler.retry_orphans(p1), two.reconciler.retry_orphans(p2))
            assert not one.reconciler.orphans and not two.reconciler.orphans
            return left
        finally:
            for live, redis in ((one, redis1), (two, redis2)):
                await live.close()
                await redis.aclose()

    left = asyncio.run(race())
    # the race happened: one gateway sent and ended it, the other lost the compare-and-set
    assert sorted(len(x) for x in left) == [0, 1]
    assert sim_orders(sim, [intent])[intent.intent_id] == 1
    finals = [x for x in reports(r) if x.intent_id == intent.intent_id and x.final]
    assert [x.status for x in finals] == [ExecutionStatus.FILLED]
    assert r.hget(keys.order(cid), "status") == b"FILLED"
    r.close()
