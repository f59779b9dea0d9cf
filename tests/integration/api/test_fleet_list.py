"""``GET /api/v1/bots`` filters, sorts and pages on the server (on the real Redis), and a
bot is read whole (hash, position, stats, lease) from one command."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from shared import keys
from tests.integration.api.conftest import bot_config

Client = AsyncTestClient[Any]


async def make_fleet(client: Client, redis: Any) -> list[dict[str, Any]]:
    bots = []
    plan = [
        ("alpha", "BTCUSDT", "rsi", "5"),
        ("Bravo", "ETHUSDT", "ema_cross", "-3"),
        ("charlie", "BTCUSDT", "ema_cross", "12.5"),
        ("delta", "ETHUSDT", "rsi", "0"),
    ]
    for name, symbol, strategy, pnl in plan:
        response = await client.post(
            "/api/v1/bots", json=bot_config(name=name, symbol=symbol, strategy=strategy, params={})
        )
        assert response.status_code == 201, response.text
        bot = response.json()
        await redis.hset(keys.bot_stats(bot["id"]), mapping={"realized_pnl": pnl})
        bots.append(bot)
    await redis.hset(keys.bot(bots[2]["id"]), "status", "running")
    return bots


async def names(client: Client, **params: Any) -> tuple[list[str], int]:
    response = await client.get("/api/v1/bots", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    return [b["name"] for b in page["items"]], page["total"]


async def test_filters_sorts_and_pages_on_the_server(client: Client, redis: Any) -> None:
    await make_fleet(client, redis)
    assert await names(client) == (["alpha", "Bravo", "charlie", "delta"], 4)
    assert await names(client, sort="-created", limit=2) == (["delta", "charlie"], 4)
    assert await names(client, sort="-realized_pnl") == (
        ["charlie", "alpha", "delta", "Bravo"],
        4,
    )
    assert await names(client, sort="name", offset=1, limit=2) == (["Bravo", "charlie"], 4)
    assert await names(client, symbol="ETHUSDT", sort="-name") == (["delta", "Bravo"], 2)
    assert await names(client, strategy="ema_cross") == (["Bravo", "charlie"], 2)
    assert await names(client, status="running") == (["charlie"], 1)
    assert await names(client, status="stopped", strategy="rsi", sort="-realized_pnl") == (
        ["alpha", "delta"],
        2,
    )
    assert await names(client, name="LT") == (["delta"], 1)  # "delta" holds "lt"


async def test_a_bad_sort_names_the_field(client: Client) -> None:
    response = await client.get("/api/v1/bots", params={"sort": "colour"})
    assert response.status_code == 400
    assert "sort" in response.text


async def test_one_bot_comes_whole_with_its_position_stats_and_lease(
    client: Client, redis: Any
) -> None:
    [bot, *_] = await make_fleet(client, redis)
    await redis.hset(keys.bot_position(bot["id"]), mapping={"qty": "0.5"})
    await redis.set(keys.bot_lease(bot["id"]), "runner-a")
    shown = (await client.get(f"/api/v1/bots/{bot['id']}")).json()
    assert shown["name"] == "alpha" and shown["symbol"] == "BTCUSDT"
    assert shown["position"] == {"qty": "0.5"}
    assert shown["stats"] == {"realized_pnl": "5"}
    missing = await client.get("/api/v1/bots/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.status_code == 404
