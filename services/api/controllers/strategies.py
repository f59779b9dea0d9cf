"""``/api/v1/strategies``: the strategies and their parameter JSON schemas, and the
JSON schema of a whole bot config (what the dashboard's create form is built from)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import Parameter

from services.api.errors import NotFound
from services.api.models import StrategyInfo
from shared.strategies.config import BotConfig
from shared.strategies.registry import (
    StrategyClass,
    UnknownStrategyError,
    describe_strategies,
    get_strategy_class,
    strategy_source,
)


def _info(cls: StrategyClass) -> StrategyInfo:
    return StrategyInfo(
        name=cls.name,
        title=cls.title,
        params_schema=cls.params_schema(),
        warmup_candles=cls().warmup_candles,
        source=strategy_source(cls.name),
    )


class StrategyController(Controller):
    path = "/api/v1/strategies"
    tags = ["strategies"]

    @get("/", summary="Every strategy with its parameter JSON schema")
    async def list_strategies(self) -> list[StrategyInfo]:
        return [_info(get_strategy_class(s["name"])) for s in describe_strategies()]

    @get("/bot-config-schema", summary="JSON schema of a bot config (the create body)")
    async def bot_config_schema(self) -> dict[str, Any]:
        return BotConfig.model_json_schema()

    @get("/{name:str}", summary="One strategy with its parameter JSON schema")
    async def get_strategy(self, name: Annotated[str, Parameter(max_length=64)]) -> StrategyInfo:
        try:
            cls = get_strategy_class(name)
        except UnknownStrategyError as exc:
            raise NotFound(str(exc), field="name") from None
        return _info(cls)
