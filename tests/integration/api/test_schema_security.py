"""The OpenAPI schema declares bearer security exactly where the guard checks it."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from services.api.app import create_app
from tests.integration.api.conftest import api_settings

Client = AsyncTestClient[Any]
METHODS = ("get", "post", "put", "patch", "delete")


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


async def test_declared_security_matches_what_the_guard_enforces(client: Client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "security" not in schema, "no blanket declaration that public routes inherit"
    ops = operations(schema)
    assert "security" not in ops[("GET", "/healthz")]
    secured = {key for key, op in ops.items() if op.get("security") == [{"bearer": []}]}
    assert secured == set(ops) - {("GET", "/healthz")}
    client.headers.pop("Authorization")
    assert (await client.get("/healthz")).status_code == 200
    for method, path in sorted(secured):
        if "{" in path or method != "GET" or path == "/api/v1/feed":
            continue
        response = await client.get(path)
        assert response.status_code == 401, (path, response.status_code)


async def test_without_a_token_no_route_claims_bearer_security(
    clean_redis_url: str, redis: Any
) -> None:
    async with AsyncTestClient(app=create_app(api_settings(clean_redis_url, api_token=None))) as c:
        schema = (await c.get("/schema/openapi.json")).json()
    assert not any("security" in op for op in operations(schema).values())
    assert "securitySchemes" not in schema.get("components", {})
