"""``botfleet runner`` top to bottom: settings in, connect, start the loops, wait for
shutdown, let go of the leases."""

from __future__ import annotations

import asyncio

from services.runner.runner import Runner
from services.runner.settings import RunnerSettings
from shared.logging import get_logger
from shared.redis import Heartbeat, connect
from shared.service import supervise

log = get_logger(__name__)


async def main(settings: RunnerSettings, stop: asyncio.Event) -> None:
    redis = await connect(settings.redis_url, max_connections=32)
    runner = Runner(redis, settings)
    heartbeat = Heartbeat(redis, "runner", settings.instance, runner.figures, interval_s=1.0)
    try:
        await runner.start()
        await heartbeat.beat()
        log.info(
            "runner.ready", capacity=settings.runner_capacity, lease_ms=settings.runner_lease_ms
        )
        await supervise(stop, {"heartbeat": heartbeat.run(), **runner.loops()})
    finally:
        await runner.shutdown()
        await heartbeat.clear()
        await redis.aclose()
