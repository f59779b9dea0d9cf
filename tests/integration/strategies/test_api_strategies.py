"""The API over a real Redis: ``GET /api/v1/strategies`` lists the built-in strategies
and the installed plugin with their schemas, warm-up and origin; a bot whose declared
warm-up exceeds what a series keeps is refused at creation with the reason."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.integration.api.conftest import bot_config, client  # noqa: F401 - fixture

Client = AsyncTestClient[Any]


async def test_strategies_list_builtins_and_the_plugin(client: Client) -> None:  # noqa: F811
    listed = {s["name"]: s for s in (await client.get("/api/v1/strategies")).json()}
    assert {"rsi", "ema_cross", "bollinger", "macd_cross", "ema_stochrsi"} <= set(listed)
    plugin = listed["donchian_breakout"]
    assert plugin["source"] == "botfleet-donchian donchian_breakout"
    assert plugin["params_schema"]["properties"]["entry_period"]["default"] == 20
    assert listed["rsi"]["source"] == "builtin" and listed["rsi"]["warmup_candles"] == 326
    one = (await client.get("/api/v1/strategies/ema_stochrsi")).json()
    assert one["warmup_candles"] == 627 and "oversold" in one["params_schema"]["properties"]
    schema = (await client.get("/api/v1/strategies/bot-config-schema")).json()
    assert "stop_loss_atr" in schema["properties"] and "take_profit_atr" in schema["properties"]


async def test_a_plugin_bot_is_created_and_a_too_long_warmup_is_refused(
    client: Client,  # noqa: F811
) -> None:
    created = await client.post(
        "/api/v1/bots",
        json=bot_config(
            strategy="donchian_breakout", params={"entry_period": 55}, stop_loss_atr="2"
        ),
    )
    assert created.status_code == 201, created.text
    assert created.json()["config"]["params"] == {"entry_period": 55, "exit_period": 10}
    refused = await client.post("/api/v1/bots", json=bot_config(params={"period": 500}))
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["field"] == "params"
    [error] = body["errors"]
    assert error["field"] == "params"
    assert "rsi with these parameters needs 12003 closed candles of warm-up" in error["message"]
    assert "more than the 10000 the fleet serves" in error["message"]
