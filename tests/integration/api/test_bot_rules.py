"""What a bot may be created as: bounded amounts, a unique name (race-proof), and only
symbols the gateway would trade."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from litestar.testing import AsyncTestClient

from services.api.app import create_app
from shared import keys
from tests.integration.api.conftest import AUTH, api_settings, bot_config, put_symbols

Client = AsyncTestClient[Any]


async def test_absurd_or_over_precise_allocations_are_refused_naming_the_field(
    client: Client,
) -> None:
    for amount, reason in (("1e300", "above the limit"), ("0.000000001", "more than 8 decimals")):
        response = await client.post("/api/v1/bots", json=bot_config(quote_allocation=amount))
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "quote_allocation"
        assert reason in response.json()["detail"]
    ok = await client.post("/api/v1/bots", json=bot_config(quote_allocation="1000.00000000"))
    assert ok.status_code == 201, ok.text


async def test_an_update_to_an_absurd_allocation_is_refused(client: Client) -> None:
    bot = (await client.post("/api/v1/bots", json=bot_config())).json()
    response = await client.patch(f"/api/v1/bots/{bot['id']}", json={"quote_allocation": "1e300"})
    assert response.status_code == 400 and response.json()["field"] == "quote_allocation"


async def test_names_are_unique_ignoring_case_and_spaces_and_freed_by_delete(
    client: Client, redis: Any
) -> None:
    first = await client.post("/api/v1/bots", json=bot_config(name="Alpha"))
    assert first.status_code == 201
    again = await client.post("/api/v1/bots", json=bot_config(name=" alpha "))
    assert again.status_code == 409, again.text
    assert again.json()["field"] == "name" and first.json()["id"] in again.json()["detail"]

    other = (await client.post("/api/v1/bots", json=bot_config(name="Beta"))).json()
    clash = await client.patch(f"/api/v1/bots/{other['id']}", json={"name": "ALPHA"})
    assert clash.status_code == 409 and clash.json()["field"] == "name"
    renamed = await client.patch(f"/api/v1/bots/{other['id']}", json={"name": "Gamma"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Gamma"
    assert await redis.hgetall(keys.BOT_NAMES) == {
        b"alpha": first.json()["id"].encode(),
        b"gamma": other["id"].encode(),
    }
    beta_again = await client.post("/api/v1/bots", json=bot_config(name="beta"))
    assert beta_again.status_code == 201, "a rename frees the old name"

    assert (await client.delete(f"/api/v1/bots/{first.json()['id']}")).status_code == 204
    reused = await client.post("/api/v1/bots", json=bot_config(name="alpha"))
    assert reused.status_code == 201, reused.text


async def test_concurrent_creations_with_one_name_leave_exactly_one_bot(
    client: Client, redis: Any
) -> None:
    answers = await asyncio.gather(
        *(client.post("/api/v1/bots", json=bot_config(name="racer")) for _ in range(20))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19, codes
    assert await redis.zcard(keys.BOTS) == 1


async def test_symbols_outside_the_gateways_allow_list_are_refused(
    clean_redis_url: str, redis: Any
) -> None:
    await put_symbols(redis)
    settings = api_settings(clean_redis_url, gateway_allowed_symbols="ethusdt, SOLUSDT")
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers.update(AUTH)
        refused = await client.post("/api/v1/bots", json=bot_config(symbol="BTCUSDT"))
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "symbol"
        assert "ETHUSDT, SOLUSDT" in refused.json()["detail"]
        ok = await client.post("/api/v1/bots", json=bot_config(symbol="ETHUSDT"))
        assert ok.status_code == 201, ok.text


async def test_bots_from_before_the_name_index_get_their_names_reserved_at_start(
    clean_redis_url: str, redis: Any
) -> None:
    await put_symbols(redis)
    for n, (bot_id, name) in enumerate(
        (("01J00000000000000000000001", "Old"), ("01J00000000000000000000002", "old"))
    ):
        config = json.dumps(bot_config(name=name))
        await redis.hset(keys.bot(bot_id), mapping={"config": config, "status": "stopped"})
        await redis.zadd(keys.BOTS, {bot_id: n})
    async with AsyncTestClient(app=create_app(api_settings(clean_redis_url))) as client:
        client.headers.update(AUTH)
        assert await redis.hgetall(keys.BOT_NAMES) == {b"old": b"01J00000000000000000000001"}
        clash = await client.post("/api/v1/bots", json=bot_config(name="OLD"))
        assert clash.status_code == 409, clash.text
