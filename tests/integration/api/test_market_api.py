"""Per-symbol market routes answer 404 for a symbol that is not listed, alike."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Any]


async def test_unknown_symbol_is_404_on_candles_and_price(client: Client) -> None:
    for path in ("/api/v1/market/FOO/candles", "/api/v1/market/FOO/price"):
        response = await client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["field"] == "symbol"
        assert "unknown symbol FOO" in response.json()["detail"]


async def test_listed_symbol_without_candles_yet_is_an_empty_list(client: Client) -> None:
    response = await client.get("/api/v1/market/ETHUSDT/candles")
    assert response.status_code == 200 and response.json() == []
