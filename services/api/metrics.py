"""Prometheus metrics of the API and of the fleet as seen from Redis.

Request latency is observed by an ASGI middleware (labelled by route template, not raw
path). Fleet figures are read from Redis when ``/metrics`` is scraped: bots by status,
entries added to the intent and execution streams (a counter: ``rate()`` gives
intents and executions per second), stream lengths, the gateway group's pending and
lag on ``stream:order-intents``, live service instances and the halt flag.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.api.repository import Repository
from shared import keys
from shared.redis import now_ms

STREAMS = {
    "intents": keys.ORDER_INTENTS,
    "executions": keys.EXECUTIONS,
    "commands": keys.BOT_COMMANDS,
    "events": keys.EVENTS,
}


class FleetCollector(Collector):
    """Yields the snapshot taken by :meth:`ApiMetrics.refresh` just before a scrape."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        bots = GaugeMetricFamily("botfleet_bots", "bots by status", labels=["status"])
        for status, count in sorted(snap.get("bots", {}).items()):
            bots.add_metric([status], count)
        yield bots
        added = CounterMetricFamily(
            "botfleet_stream_entries_added", "entries ever added to a stream", labels=["stream"]
        )
        length = GaugeMetricFamily(
            "botfleet_stream_length", "entries in a stream", labels=["stream"]
        )
        for name, info in sorted(snap.get("streams", {}).items()):
            added.add_metric([name], info["entries_added"])
            length.add_metric([name], info["length"])
        yield added
        yield length
        pending = GaugeMetricFamily(
            "botfleet_gateway_pending", "intents delivered to the gateway and not acknowledged"
        )
        lag = GaugeMetricFamily("botfleet_gateway_lag", "intents not yet delivered to the gateway")
        group = snap.get("group")
        if group is not None:
            pending.add_metric([], group["pending"])
            lag.add_metric([], group["lag"])
        yield pending
        yield lag
        alive = GaugeMetricFamily(
            "botfleet_service_instances", "live service instances", labels=["service"]
        )
        for service, count in sorted(snap.get("services", {}).items()):
            alive.add_metric([service], count)
        yield alive
        halted = GaugeMetricFamily("botfleet_risk_halted", "1 while trading is halted")
        halted.add_metric([], 1 if snap.get("halted") else 0)
        yield halted


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "botfleet_api_request_seconds",
            "API request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.fleet = FleetCollector()
        self.registry.register(self.fleet)

    async def refresh(self, repo: Repository) -> None:
        statuses = await repo.statuses()
        by_status: dict[str, int] = {}
        for status in statuses:
            by_status[status] = by_status.get(status, 0) + 1
        streams = {name: await repo.stream_info(key) for name, key in STREAMS.items()}
        group = await repo.group_lag(keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
        now = now_ms()
        services: dict[str, int] = {}
        for beat in await repo.heartbeats():
            if now - int(beat.get("ts", "0") or 0) <= 15_000:
                services[beat["service"]] = services.get(beat["service"], 0) + 1
        halted = await repo.halt_reason() is not None
        self.fleet.snapshot = {
            "bots": by_status,
            "streams": streams,
            "group": group,
            "services": services,
            "halted": halted,
        }

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self, app: Any) -> Any:
        latency = self.latency

        async def measure(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope.get("path_template", "").endswith("/feed"):
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500

            async def send_wrapper(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_wrapper)
            finally:
                latency.labels(
                    scope["method"], scope.get("path_template", "unmatched"), str(status)
                ).observe(time.perf_counter() - start)

        return measure
