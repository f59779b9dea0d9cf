"""``/api/v1/bots``: list, create, read, change, delete, start and stop bots; their
trades, decisions and executions; the fleet summary and health."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from services.api.fleet import Fleet
from services.api.ids import ID_PATTERN
from services.api.listing import SORT_PATTERN, SORTS, Query
from services.api.models import (
    Bot,
    BotPage,
    CommandAccepted,
    Entry,
    Execution,
    Health,
    Summary,
)
from services.api.repository import Repository
from shared import keys
from shared.bots import BotStatus
from shared.messages import encode_json
from shared.strategies.config import BotConfig

BotId = Annotated[str, Parameter(pattern=ID_PATTERN, description="bot id (26-char ULID)")]
Wait = Annotated[
    float, Parameter(ge=0, le=60, description="seconds to wait for the transition (0 = answer now)")
]
Limit = Annotated[int, Parameter(ge=1, le=1000, description="entries to return, newest first")]


def _entries(raw: list[Any]) -> list[Entry]:
    out = []
    for item in raw:
        fields: dict[str, Any] = dict(item.fields)
        if "data" in fields:  # a typed message: show its payload
            try:
                fields = {"type": fields.get("type", ""), **json.loads(fields["data"])}
            except ValueError:
                pass
        out.append(Entry(id=item.entry_id, fields=fields))
    return out


class BotController(Controller):
    path = "/api/v1/bots"
    tags = ["bots"]

    @get(
        "/",
        summary="List bots: filtered, sorted and paged on the server",
        description=(
            "Filters: `status`, `symbol`, `strategy`, `name` (a part of the name, any "
            "case). `sort`: a field, `-` first for descending: "
            + ", ".join(SORTS)
            + " (default `created`, oldest first). `total` counts every match."
        ),
    )
    async def list_bots(
        self,
        fleet: NamedDependency[Fleet],
        status: Annotated[
            BotStatus | None, Parameter(description="only bots in this status")
        ] = None,
        symbol: Annotated[str | None, Parameter(pattern=r"^[A-Z0-9]{2,20}$")] = None,
        strategy: Annotated[
            str | None,
            Parameter(pattern=r"^[a-z0-9_]{1,64}$", description="only bots of this strategy"),
        ] = None,
        name: Annotated[
            str | None,
            Parameter(min_length=1, max_length=100, description="a part of the bot's name"),
        ] = None,
        sort: Annotated[
            str, Parameter(pattern=SORT_PATTERN, description="field, or -field for descending")
        ] = "created",
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> BotPage:
        query = Query(
            status=status.value if status else None,
            symbol=symbol,
            strategy=strategy,
            name=name,
            sort=sort,
        )
        return await fleet.list(query, offset=offset, limit=limit)

    @post("/", status_code=HTTP_201_CREATED, summary="Create a bot (stopped)")
    async def create_bot(self, fleet: NamedDependency[Fleet], data: BotConfig) -> Bot:
        return await fleet.create(data)

    @get("/summary", summary="Totals across all bots: equity, PnL, exposure, open positions")
    async def summary(self, fleet: NamedDependency[Fleet]) -> Summary:
        return await fleet.summary()

    @get("/health", summary="Every service's heartbeat, Redis, stale symbols and bots")
    async def health(self, fleet: NamedDependency[Fleet]) -> Health:
        return await fleet.health()

    @get("/{bot_id:str}", summary="One bot: config, status, owner, position, stats")
    async def get_bot(self, fleet: NamedDependency[Fleet], bot_id: BotId) -> Bot:
        return await fleet.get(bot_id)

    @patch("/{bot_id:str}", summary="Change a stopped bot's config (fields of BotConfig)")
    async def update_bot(
        self,
        fleet: NamedDependency[Fleet],
        bot_id: BotId,
        data: Annotated[dict[str, Any], Body(description="BotConfig fields to change")],
    ) -> Bot:
        return await fleet.update(bot_id, data)

    @delete("/{bot_id:str}", status_code=HTTP_204_NO_CONTENT, summary="Delete a stopped bot")
    async def delete_bot(self, fleet: NamedDependency[Fleet], bot_id: BotId) -> None:
        await fleet.delete(bot_id)

    @post("/{bot_id:str}/start", status_code=HTTP_202_ACCEPTED, summary="Start a bot")
    async def start_bot(
        self, fleet: NamedDependency[Fleet], bot_id: BotId, wait: Wait = 0
    ) -> CommandAccepted:
        return await fleet.start(bot_id, wait)

    @post("/{bot_id:str}/stop", status_code=HTTP_202_ACCEPTED, summary="Stop a bot")
    async def stop_bot(
        self, fleet: NamedDependency[Fleet], bot_id: BotId, wait: Wait = 0
    ) -> CommandAccepted:
        return await fleet.stop(bot_id, wait)

    @get("/{bot_id:str}/trades", summary="A bot's closed round trips, newest first")
    async def trades(
        self,
        fleet: NamedDependency[Fleet],
        repo: NamedDependency[Repository],
        bot_id: BotId,
        limit: Limit = 100,
    ) -> list[Entry]:
        await fleet.get(bot_id)
        return _entries(await repo.stream_tail(keys.bot_trades(bot_id), limit))

    @get("/{bot_id:str}/log", summary="A bot's decisions with the strategy's reasoning")
    async def decision_log(
        self,
        fleet: NamedDependency[Fleet],
        repo: NamedDependency[Repository],
        bot_id: BotId,
        limit: Limit = 100,
    ) -> list[Entry]:
        await fleet.get(bot_id)
        return _entries(await repo.stream_tail(keys.bot_log(bot_id), limit))

    @get("/{bot_id:str}/executions", summary="A bot's execution reports, newest first")
    async def executions(
        self,
        fleet: NamedDependency[Fleet],
        repo: NamedDependency[Repository],
        bot_id: BotId,
        limit: Limit = 100,
    ) -> list[Execution]:
        await fleet.get(bot_id)
        found = await repo.executions(bot_id, limit)
        return [Execution(id=i, report=msgspec.json.decode(encode_json(r))) for i, r in found]
