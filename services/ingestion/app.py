"""``botfleet ingestion``, top to bottom: load settings, connect, start loops, wait for shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shared.redis import Heartbeat, connect
from shared.service import run_service, supervise
from shared.settings import load_settings

from .service import IngestionService
from .settings import IngestionSettings


async def run(settings: IngestionSettings, stop: asyncio.Event) -> None:
    redis = await connect(settings.redis_url)
    http = httpx.AsyncClient(base_url=settings.rest_url, timeout=settings.ingestion_rest_timeout_s)
    service = IngestionService(settings, redis, http)
    heartbeat = Heartbeat(redis, "ingestion", settings.instance, service.figures)
    try:
        await service.writer.load_scripts()
        await supervise(
            stop,
            {
                "writer": service.writer.run(),
                "leases": service.lease_loop(),
                "subscriptions-notify": service.notification_loop(),
                "subscriptions-reconcile": service.reconcile_loop(),
                "backfill": service.backfill_loop(),
                "depth": service.depth_loop(),
                "exchange-info": service.exchange_info_loop(),
                "exchange-clock": service.clock_loop(),
                "heartbeat": heartbeat.run(),
            },
        )
    finally:
        await service.close()
        await service.leases.release_all()
        await heartbeat.clear()
        await http.aclose()
        await redis.aclose()


def main(**overrides: Any) -> int:
    settings = load_settings(IngestionSettings, **overrides)
    return run_service("ingestion", settings, lambda stop: run(settings, stop))
