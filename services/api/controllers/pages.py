"""Reads the dashboard's pages need beyond the fleet views: the recent history of
``stream:events`` (the events page lists it before the live feed adds to it) and the
exchange clock (``market:clock``), with which the page turns a decision's local time
into exchange time, the time its chart is drawn in."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from services.api.repository import Repository, text
from shared import keys
from shared.bots import BOT_ID_PATTERN
from shared.messages import Event, MessageDecodeError, decode
from shared.redis import now_ms


class EventView(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the stream entry id
    kind: str
    message: str
    level: str
    service: str
    bot_id: str | None
    symbol: str | None
    details: dict[str, Any]
    ts: int


class ClockView(msgspec.Struct, frozen=True, kw_only=True):
    exchange_ms: int  # the exchange's time at local_ms (the latest sample, by ingestion)
    local_ms: int
    rate: float  # exchange ms per local ms (1 against Binance; the simulator's --speed)
    now_local_ms: int
    now_exchange_ms: int
    sampled: bool  # False: no sample yet, exchange time is taken to be local time


SCAN_WINDOW = 5000
CHUNK = 500


def _view(entry_id: str, fields: dict[Any, Any]) -> EventView | None:
    """The entry as an event, or None when it is not one (the feed reader dead-letters
    a malformed entry; a listing only skips it)."""
    try:
        event = decode(fields)
    except MessageDecodeError:
        return None
    if not isinstance(event, Event):
        return None
    return EventView(
        id=entry_id,
        kind=event.kind,
        message=event.message,
        level=event.level,
        service=event.service,
        bot_id=event.bot_id,
        symbol=event.symbol,
        details=event.details,
        ts=event.ts,
    )


class PagesController(Controller):
    path = "/api/v1"
    tags = ["dashboard"]

    @get("/events", summary="Recent fleet events (stream:events), newest first")
    async def events(
        self,
        repo: NamedDependency[Repository],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 200,
        bot_id: Annotated[str | None, Parameter(pattern=BOT_ID_PATTERN)] = None,
        level: Annotated[str | None, Parameter(pattern=r"^[a-z]{1,16}$")] = None,
    ) -> list[EventView]:
        # Newest first, a chunk at a time, until ``limit`` match or SCAN_WINDOW entries
        # were read (filters and skipped entries look no further back than that).
        out: list[EventView] = []
        read, end = 0, "+"
        while len(out) < limit and read < SCAN_WINDOW:
            chunk = await repo.redis.xrevrange(keys.EVENTS, end, "-", count=CHUNK)
            if not chunk:
                break
            read += len(chunk)
            end = "(" + text(chunk[-1][0])
            for entry_id, fields in chunk:
                view = _view(text(entry_id), fields)
                if view is None or (bot_id and view.bot_id != bot_id):
                    continue
                if level and view.level != level:
                    continue
                out.append(view)
                if len(out) >= limit:
                    break
        return out

    @get("/market/clock", summary="The exchange clock: exchange time now, and its rate")
    async def clock(self, repo: NamedDependency[Repository]) -> ClockView:
        now = now_ms()
        sample = await repo.exchange_clock()
        if sample is None:
            return ClockView(
                exchange_ms=now,
                local_ms=now,
                rate=1.0,
                now_local_ms=now,
                now_exchange_ms=now,
                sampled=False,
            )
        return ClockView(
            exchange_ms=sample.exchange_ms,
            local_ms=sample.local_ms,
            rate=sample.rate,
            now_local_ms=now,
            now_exchange_ms=sample.now(now),
            sampled=True,
        )
