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
        # Filters are applied to a bounded window of the newest entries.
        scan = limit if bot_id is None and level is None else 5000
        out: list[EventView] = []
        for entry_id, fields in await repo.redis.xrevrange(keys.EVENTS, count=scan):
            try:
                event = decode(fields)
            except MessageDecodeError:
                continue  # the feed reader dead-letters it; a listing only skips it
            if not isinstance(event, Event):
                continue
            if (bot_id and event.bot_id != bot_id) or (level and event.level != level):
                continue
            out.append(
                EventView(
                    id=text(entry_id),
                    kind=event.kind,
                    message=event.message,
                    level=event.level,
                    service=event.service,
                    bot_id=event.bot_id,
                    symbol=event.symbol,
                    details=event.details,
                    ts=event.ts,
                )
            )
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
