"""Liveness (public), Prometheus metrics and the live feed (Server-Sent Events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from services.api.auth import PUBLIC
from services.api.feed import FeedHub
from services.api.metrics import ApiMetrics
from services.api.repository import Repository

KEEPALIVE_S = 15.0


@get(
    "/healthz",
    opt=PUBLIC,
    tags=["system"],
    summary="Liveness of the API process (no Redis, no auth)",
)
async def liveness() -> dict[str, str]:
    """Outside the bearer-protected router, so the schema declares it public as it is."""
    return {"status": "alive"}


class SystemController(Controller):
    tags = ["system"]

    @get("/metrics", media_type=MediaType.TEXT, summary="Prometheus metrics")
    async def metrics(
        self, repo: NamedDependency[Repository], api_metrics: NamedDependency[ApiMetrics]
    ) -> Response[bytes]:
        await api_metrics.refresh(repo)
        return Response(api_metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @get(
        "/api/v1/feed",
        summary="Live feed (text/event-stream): execution, event, price, candle",
        description=(
            "Server-Sent Events. Each message's event name is its kind and its data the "
            "JSON payload. A comment line is sent every 15 s while idle."
        ),
    )
    async def feed(self, feed_hub: NamedDependency[FeedHub]) -> ServerSentEvent:
        async def stream() -> AsyncIterator[ServerSentEventMessage]:
            async with feed_hub.subscribe() as sub:
                yield ServerSentEventMessage(event="hello", data=json.dumps({"ok": True}))
                while True:
                    item = await sub.get(KEEPALIVE_S)
                    if item is None:
                        if sub.dropped:
                            return
                        yield ServerSentEventMessage(comment="keep-alive")
                        continue
                    yield ServerSentEventMessage(
                        event=item.kind, data=json.dumps(item.data, default=str)
                    )

        return ServerSentEvent(stream())
