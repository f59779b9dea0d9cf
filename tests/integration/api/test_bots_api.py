"""The bots resource over HTTP against a real Redis: create, read, list, change,
delete, start, stop, and the status codes that tell the truth."""

from __future__ import annotations

import threading
from typing import Any

from litestar.testing import AsyncTestClient

from services.api.ids import is_id
from shared import keys
from shared.bots import BotField
from shared.messages import BotCommand, CommandAction, decode_as
from tests.integration.api.conftest import beat, bot_config

Client = AsyncTestClient[Any]


async def create(client: Client, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/bots", json=bot_config(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_stores_a_stopped_bot_with_its_validated_config(
    client: Client, redis: Any
) -> None:
    bot = await create(client)
    assert is_id(bot["id"])
    assert (bot["status"], bot["desired"], bot["symbol"]) == ("stopped", "stopped", "BTCUSDT")
    assert bot["config"]["params"]["oversold"] == 30.0  # defaults filled in
    stored = await redis.hgetall(keys.bot(bot["id"]))
    assert stored[b"desired"] == b"stopped" and stored[b"status"] == b"stopped"
    assert await redis.zscore(keys.BOTS, bot["id"]) == int(stored[b"created_at"])
    got = await client.get(f"/api/v1/bots/{bot['id']}")
    assert got.status_code == 200 and got.json()["config"] == bot["config"]


async def test_create_refuses_an_unlisted_or_halted_symbol_naming_the_field(client: Client) -> None:
    for symbol in ("XRPUSDT", "LUNAUSDT"):
        response = await client.post("/api/v1/bots", json=bot_config(symbol=symbol))
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "symbol"


async def test_create_refuses_bad_params_sizing_and_strategy_naming_the_field(
    client: Client,
) -> None:
    cases = {
        "params": bot_config(params={"period": 1}),
        "strategy": bot_config(strategy="martingale"),
        "sizing": bot_config(sizing={"mode": "fixed_quote", "quote_amount": "5000"}),
        "quote_allocation": bot_config(quote_allocation="-1"),
    }
    for name, body in cases.items():
        response = await client.post("/api/v1/bots", json=body)
        assert response.status_code == 400, (name, response.text)
        assert name in response.text, (name, response.text)


async def test_unknown_bot_is_404_and_malformed_id_is_400(client: Client) -> None:
    assert (await client.get("/api/v1/bots/01HZZZZZZZZZZZZZZZZZZZZZZZ")).status_code == 404
    assert (await client.get("/api/v1/bots/not-an-id")).status_code == 400
    assert (await client.post("/api/v1/bots/01HZZZZZZZZZZZZZZZZZZZZZZZ/stop")).status_code == 404


async def test_list_filters_by_status_and_symbol_and_paginates(client: Client, redis: Any) -> None:
    ids = [
        (await create(client, name=f"b{i}", symbol="ETHUSDT" if i % 2 else "BTCUSDT"))["id"]
        for i in range(5)
    ]
    await redis.hset(keys.bot(ids[0]), BotField.STATUS, "running")
    page = (await client.get("/api/v1/bots", params={"limit": 2, "offset": 1})).json()
    assert page["total"] == 5 and [b["id"] for b in page["items"]] == ids[1:3]
    eth = (await client.get("/api/v1/bots", params={"symbol": "ETHUSDT"})).json()
    assert [b["id"] for b in eth["items"]] == [ids[1], ids[3]]
    running = (await client.get("/api/v1/bots", params={"status": "running"})).json()
    assert [b["id"] for b in running["items"]] == [ids[0]]


async def test_start_needs_a_live_runner_and_gateway(client: Client, redis: Any) -> None:
    bot = await create(client)
    response = await client.post(f"/api/v1/bots/{bot['id']}/start")
    assert response.status_code == 503 and "runner" in response.json()["detail"]
    await beat(redis, "runner")
    response = await client.post(f"/api/v1/bots/{bot['id']}/start")
    assert response.status_code == 503 and "gateway" in response.json()["detail"]
    assert (await redis.hget(keys.bot(bot["id"]), "desired")) == b"stopped"


async def test_start_and_stop_record_desired_state_and_append_a_command(
    client: Client, redis: Any
) -> None:
    bot = await create(client)
    await beat(redis, "runner")
    await beat(redis, "gateway")
    response = await client.post(f"/api/v1/bots/{bot['id']}/start")
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["desired"], body["status"], body["settled"]) == ("running", "stopped", False)
    assert await redis.hget(keys.bot(bot["id"]), "desired") == b"running"
    [(_, fields)] = await redis.xrange(keys.BOT_COMMANDS)
    cmd = decode_as(fields, BotCommand)
    assert (cmd.bot_id, cmd.action, cmd.command_id) == (
        bot["id"],
        CommandAction.START,
        body["command_id"],
    )
    stop = await client.post(f"/api/v1/bots/{bot['id']}/stop")
    assert stop.status_code == 202 and stop.json()["desired"] == "stopped"
    assert await redis.xlen(keys.BOT_COMMANDS) == 2


async def test_update_and_delete_are_refused_while_running_and_allowed_when_stopped(
    client: Client, redis: Any
) -> None:
    bot = await create(client)
    await beat(redis, "runner")
    await beat(redis, "gateway")
    await client.post(f"/api/v1/bots/{bot['id']}/start")
    assert (await client.patch(f"/api/v1/bots/{bot['id']}", json={"name": "x"})).status_code == 409
    assert (await client.delete(f"/api/v1/bots/{bot['id']}")).status_code == 409
    await client.post(f"/api/v1/bots/{bot['id']}/stop")
    await redis.hset(keys.bot(bot["id"]), "status", "stopping")  # the runner is closing
    assert (await client.delete(f"/api/v1/bots/{bot['id']}")).status_code == 409
    await redis.hset(keys.bot(bot["id"]), "status", "stopped")
    changed = await client.patch(
        f"/api/v1/bots/{bot['id']}", json={"name": "renamed", "params": {"period": 21}}
    )
    assert changed.status_code == 200, changed.text
    assert (
        changed.json()["name"] == "renamed" and changed.json()["config"]["params"]["period"] == 21
    )
    bad = await client.patch(f"/api/v1/bots/{bot['id']}", json={"stop_loss_pct": "500"})
    assert bad.status_code == 400 and bad.json()["field"] == "stop_loss_pct"
    assert (await client.delete(f"/api/v1/bots/{bot['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/bots/{bot['id']}")).status_code == 404
    assert await redis.zcard(keys.BOTS) == 0


async def test_wait_returns_once_the_runner_reports_the_status(
    client: Client, redis: Any, sync_redis_client: Any
) -> None:
    bot = await create(client)
    await beat(redis, "runner")
    await beat(redis, "gateway")
    # The test client blocks this loop while it serves, so the "runner" writes from a thread.
    runner = threading.Timer(
        0.3, sync_redis_client.hset, (keys.bot(bot["id"]), "status", "running")
    )
    runner.start()
    response = await client.post(f"/api/v1/bots/{bot['id']}/start", params={"wait": 10})
    runner.join()
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["settled"]) == ("running", True)
