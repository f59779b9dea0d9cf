"""``/api/v1/orders`` and ``/api/v1/balances``: execution reports (by bot), the gateway's
order records, balances of the paper or live account."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from services.api.errors import NotFound
from services.api.ids import ID_PATTERN
from services.api.models import Balances, Execution
from services.api.repository import Repository
from shared.messages import encode_json


class OrderController(Controller):
    path = "/api/v1"
    tags = ["orders"]

    @get("/orders", summary="Execution reports, newest first (optionally of one bot)")
    async def executions(
        self,
        repo: NamedDependency[Repository],
        bot_id: Annotated[str | None, Parameter(pattern=ID_PATTERN)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[Execution]:
        found = await repo.executions(bot_id, limit)
        return [Execution(id=i, report=msgspec.json.decode(encode_json(r))) for i, r in found]

    @get("/orders/{client_order_id:str}", summary="The gateway's record of one order")
    async def order(
        self,
        repo: NamedDependency[Repository],
        client_order_id: Annotated[str, Parameter(pattern=r"^[a-zA-Z0-9_-]{1,36}$")],
    ) -> dict[str, str]:
        record = await repo.order(client_order_id)
        if not record:
            raise NotFound(f"no order {client_order_id}", field="client_order_id")
        return record

    @get("/balances", summary="Balances (asset -> free/locked) of the paper or live account")
    async def balances(
        self,
        repo: NamedDependency[Repository],
        trading_mode: NamedDependency[str],
        mode: Annotated[Literal["paper", "live"] | None, Parameter()] = None,
    ) -> Balances:
        chosen = mode or trading_mode
        # decimal strings as stored (never through a float)
        assets: dict[str, Any] = dict(await repo.balances(chosen))
        return Balances(mode=chosen, assets=assets)
