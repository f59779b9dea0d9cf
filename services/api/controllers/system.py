"""Liveness (public), Prometheus metrics and the live feed (Server-Sent Events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from services.api.auth import PUBLIC
from services.api.feed import EVENT_ID_PATTERN, Cursor, FeedHub, FeedItem
from services.api.metrics import ApiMetrics
from services.api.repository import Repository

KEEPALIVE_S = 15.0
REPLAY_LIMIT = 1000  # missed entries per stream replayed on resume; beyond: "resync"


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
            "JSON payload. `hello`, `execution` and `event` messages carry an `id:` (the "
            "position in stream:executions and stream:events); reconnecting with "
            "`Last-Event-ID` replays the executions and events missed since, then goes "
            "live. When more than 1000 of a stream were missed a `resync` message says "
            "so (reload over REST). A comment line is sent every 15 s while idle."
        ),
    )
    async def feed(
        self,
        feed_hub: NamedDependency[FeedHub],
        last_event_id: Annotated[
            str | None,
            Parameter(
                header="Last-Event-ID",
                pattern=EVENT_ID_PATTERN,
                description="the id of the last message received, to resume after it",
            ),
        ] = None,
    ) -> ServerSentEvent:
        async def stream() -> AsyncIterator[ServerSentEventMessage]:
            # Subscribe before replaying: what arrives meanwhile waits in the queue and
            # the cursor drops what the replay already sent.
            async with feed_hub.subscribe() as sub:
                if last_event_id is None:
                    cursor = feed_hub.cursor_now()
                    missed: list[FeedItem] = []
                    complete = True
                else:
                    cursor = Cursor.parse(last_event_id)
                    missed, complete = await feed_hub.replay(cursor, REPLAY_LIMIT)
                if not complete:
                    yield ServerSentEventMessage(
                        event="resync",
                        data=json.dumps({"reason": f"more than {REPLAY_LIMIT} entries missed"}),
                    )
                yield ServerSentEventMessage(
                    event="hello", data=json.dumps({"ok": True}), id=cursor.event_id()
                )
                for old in missed:
                    if not cursor.seen(old):
                        cursor.advance(old)
                        yield _message(old, cursor)
                while True:
                    item = await sub.get(KEEPALIVE_S)
                    if item is None:
                        if sub.dropped:
                            return
                        yield ServerSentEventMessage(comment="keep-alive")
                        continue
                    if cursor.seen(item):
                        continue
                    cursor.advance(item)
                    yield _message(item, cursor)

        return ServerSentEvent(stream())


def _message(item: FeedItem, cursor: Cursor) -> ServerSentEventMessage:
    event_id = cursor.event_id() if item.stream in cursor.positions else None
    return ServerSentEventMessage(
        event=item.kind, data=json.dumps(item.data, default=str), id=event_id
    )
