"""Prometheus metrics of the API and of the fleet as seen from Redis.

Request latency is observed by an ASGI middleware (labelled by route template, not raw
path). Fleet figures are read from Redis when ``/metrics`` is scraped: bots by status,
entries added to the intent and execution streams (a counter: ``rate()`` gives
intents and executions per second), stream lengths, the gateway group's pending and
lag on ``stream:order-intents``, live and stalled service instances, the halt flag;
per bot (labels ``bot``, ``symbol``) the runner's stats: realized and unrealized PnL,
equity, position value, fees, fills, rejections and round trips; and the signal ->
order latency the gateways observe (``signal_to_ack_ms`` in their heartbeats,
shared/latency.py), summed over the live gateways as one histogram.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from services.api.repository import Repository
from shared import keys
from shared.health import judge
from shared.latency import SIGNAL_TO_ACK_FIELD, LatencyHistogram, merge
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
        stalled = GaugeMetricFamily(
            "botfleet_service_instances_stalled",
            "live instances whose main loop has not progressed (shared/health.py)",
            labels=["service"],
        )
        for service, count in sorted(snap.get("stalled", {}).items()):
            stalled.add_metric([service], count)
        yield stalled
        halted = GaugeMetricFamily("botfleet_risk_halted", "1 while trading is halted")
        halted.add_metric([], 1 if snap.get("halted") else 0)
        yield halted
        yield from bot_families(snap.get("per_bot", []))
        latency: LatencyHistogram | None = snap.get("signal_to_ack")
        if latency is not None:
            yield latency_family(latency)


# (metric name, kind, help, stats field); values are the runner's decimal strings.
BOT_FIGURES = (
    ("botfleet_bot_realized_pnl", "gauge", "realized PnL in the quote asset", "realized_pnl"),
    ("botfleet_bot_unrealized_pnl", "gauge", "unrealized PnL at the mark", "unrealized_pnl"),
    ("botfleet_bot_equity", "gauge", "allocation + realized + open position at the mark", "equity"),
    ("botfleet_bot_fees", "counter", "fees paid, in the quote asset", "fees"),
    ("botfleet_bot_fills", "counter", "fills applied to the bot's book", "fills"),
    ("botfleet_bot_rejections", "counter", "orders of the bot rejected", "rejections"),
    ("botfleet_bot_round_trips", "counter", "closed round trips", "trades"),
)


def _num(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def bot_families(per_bot: list[tuple[str, str, dict[str, str], str]]) -> Iterator[Metric]:
    """One family per figure, one sample per bot (labels ``bot`` and ``symbol``)."""
    labels = ["bot", "symbol"]
    for name, kind, doc, stat in BOT_FIGURES:
        family: GaugeMetricFamily | CounterMetricFamily = (
            GaugeMetricFamily(name, doc, labels=labels)
            if kind == "gauge"
            else CounterMetricFamily(name, doc, labels=labels)
        )
        for bot_id, _status, stats, _qty in per_bot:
            family.add_metric([bot_id, stats.get("symbol", "")], _num(stats.get(stat)))
        yield family
    value = GaugeMetricFamily(
        "botfleet_bot_position_value",
        "open position at the last mark price, in the quote asset",
        labels=labels,
    )
    for bot_id, _status, stats, qty in per_bot:
        value.add_metric(
            [bot_id, stats.get("symbol", "")], _num(qty) * _num(stats.get("mark_price"))
        )
    yield value


def latency_family(hist: LatencyHistogram) -> Metric:
    family = HistogramMetricFamily(
        "botfleet_signal_to_ack_seconds",
        "an order intent's creation by a runner to its report by the gateway",
    )
    cumulative, buckets = 0, []
    for bound, count in zip(hist.bounds, hist.counts, strict=False):
        cumulative += count
        buckets.append((repr(bound / 1000), cumulative))
    buckets.append(("+Inf", hist.count))
    family.add_metric([], buckets, sum_value=hist.total_ms / 1000)
    return family


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
        per_bot = await repo.bot_figures()
        by_status: dict[str, int] = {}
        for _bot_id, status, _stats, _qty in per_bot:
            by_status[status] = by_status.get(status, 0) + 1
        streams = {name: await repo.stream_info(key) for name, key in STREAMS.items()}
        group = await repo.group_lag(keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
        now = now_ms()
        services: dict[str, int] = {}
        stalled: dict[str, int] = {}
        acks: list[str] = []
        for beat in await repo.heartbeats():
            verdict = judge(beat, now)
            if not verdict.alive:
                continue
            service = beat["service"]
            services[service] = services.get(service, 0) + 1
            if verdict.loop_stalled:
                stalled[service] = stalled.get(service, 0) + 1
            if SIGNAL_TO_ACK_FIELD in beat:
                acks.append(beat[SIGNAL_TO_ACK_FIELD])
        halted = await repo.halt_reason() is not None
        self.fleet.snapshot = {
            "bots": by_status,
            "streams": streams,
            "group": group,
            "services": services,
            "stalled": stalled,
            "halted": halted,
            "per_bot": per_bot,
            "signal_to_ack": merge(acks),
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
