"""Every error names the field and says the real reason (docs/api.md "Errors")."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.integration.api.conftest import bot_config

Client = AsyncTestClient[Any]


async def test_a_schema_error_carries_field_and_reason_in_items_and_detail(client: Client) -> None:
    response = await client.post("/api/v1/bots", json=bot_config(strategy="macd"))
    body = response.json()
    assert response.status_code == 400
    assert body["field"] == "strategy"
    assert body["errors"][0]["field"] == "strategy"
    assert body["errors"][0]["message"].startswith("unknown strategy 'macd'; known:")
    assert "key" not in body["errors"][0]
    assert body["detail"].startswith("strategy: unknown strategy 'macd'; known:")
    assert "Validation failed" not in body["detail"]


async def test_a_path_parameter_error_names_its_field_and_source(client: Client) -> None:
    response = await client.get("/api/v1/bots/xx")
    body = response.json()
    assert response.status_code == 400
    assert body["errors"] == [
        {"field": "bot_id", "message": body["errors"][0]["message"], "source": "path"}
    ]
    assert body["detail"].startswith("bot_id: Expected `str` matching regex")
