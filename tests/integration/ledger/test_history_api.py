"""The history API over the ledger (both engines): filters, cursor pages, the CSV export
equal to the JSON pages, the equity history, and the answer without a ledger."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.ledger.writer import Batch, LedgerWriter
from tests.integration.api.conftest import AUTH, api_settings
from tests.integration.ledger.helpers import T0, report


async def fill_ledger(engine: AsyncEngine, n: int) -> None:
    batch = Batch()
    for i in range(n):
        batch.add_report(
            report(i, bot=("bot-a", "bot-b")[i % 3 == 0], symbol=("BTCUSDT", "ETHUSDT")[i % 2],
                   fills=1 + i % 2),
            f"{i}-0",
        )  # fmt: skip
    await LedgerWriter(engine).write(batch)


async def walk(client: Any, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_csv_export_equals_the_api_pages(
    engine: AsyncEngine, database_url: str, clean_redis_url: str
) -> None:
    await fill_ledger(engine, 300)
    app = create_app(api_settings(clean_redis_url, ledger_database_url=database_url))
    async with AsyncTestClient(app) as client:
        for path, params in (
            ("/api/v1/trades", {"limit": 37}),
            ("/api/v1/trades", {"limit": 50, "bot_id": "bot-a", "side": "BUY"}),
            ("/api/v1/orders/history", {"limit": 41, "symbol": "ETHUSDT"}),
            ("/api/v1/trades", {"start": T0 + 100_000, "end": T0 + 200_000, "limit": 7}),
        ):
            pages = await walk(client, path, params)
            assert pages, (path, params)
            response = await client.get(path, params={**params, "format": "csv"}, headers=AUTH)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/csv"), response.text[:300]
            rows = list(csv.DictReader(io.StringIO(response.text)))
            assert len(rows) == len(pages), (path, params)
            for row, item in zip(rows, pages, strict=True):
                as_text = {
                    k: (
                        ""
                        if v is None
                        else ("true" if v is True else "false" if v is False else str(v))
                    )
                    for k, v in item.items()
                }
                assert row == as_text

        trades = await walk(client, "/api/v1/trades", {"limit": 1000})
        assert len(trades) == 450  # 150 reports with one fill, 150 with two
        assert [t["id"] for t in trades] == sorted((t["id"] for t in trades), reverse=True)
        assert isinstance(trades[0]["price"], str)  # money stays a decimal string in JSON
        timed = await walk(client, "/api/v1/trades", {"start": T0 + 100_000, "end": T0 + 200_000})
        assert {t["ts"] for t in timed} == {T0 + i * 1000 for i in range(100, 200)}

        bad = await client.get("/api/v1/trades", params={"cursor": "abc"}, headers=AUTH)
        assert bad.status_code == 400


async def test_equity_history_of_a_bot_and_of_the_portfolio(
    engine: AsyncEngine, database_url: str, clean_redis_url: str
) -> None:
    from decimal import Decimal

    rows = [
        {"bot_id": bot, "day": day, "equity": Decimal(eq), "realized_pnl": Decimal("0"),
         "total_pnl": Decimal("0"), "fees": Decimal("0.5"), "trades": 1, "taken_at": 1}
        for bot, day, eq in (
            ("bot-a", "2024-01-01", "100.5"), ("bot-a", "2024-01-02", "101.25"),
            ("bot-b", "2024-01-02", "50.125"), ("bot-b", "2024-01-03", "49"),
        )
    ]  # fmt: skip
    await LedgerWriter(engine).record_equity(rows)
    app = create_app(api_settings(clean_redis_url, ledger_database_url=database_url))
    async with AsyncTestClient(app) as client:
        bot = (await client.get("/api/v1/equity", params={"bot_id": "bot-a"}, headers=AUTH)).json()
        assert [(p["day"], p["equity"]) for p in bot] == [
            ("2024-01-01", "100.5"),
            ("2024-01-02", "101.25"),
        ]
        portfolio = (
            await client.get("/api/v1/equity", params={"start_day": "2024-01-02"}, headers=AUTH)
        ).json()
        assert [(p["day"], p["equity"], p["bots"]) for p in portfolio] == [
            ("2024-01-02", "151.375", 2),
            ("2024-01-03", "49", 1),
        ]


async def test_without_a_ledger_database_the_history_is_empty(
    tmp_path: Path, clean_redis_url: str
) -> None:
    url = f"sqlite:///{tmp_path / 'none' / 'ledger.db'}"
    app = create_app(api_settings(clean_redis_url, ledger_database_url=url))
    async with AsyncTestClient(app) as client:
        response = await client.get("/api/v1/trades", headers=AUTH)
        assert response.status_code == 200
        assert response.json() == {"items": [], "next_cursor": None}
    assert not (tmp_path / "none").exists()


async def test_an_unreachable_ledger_answers_503(clean_redis_url: str) -> None:
    from tests.support.redis_server import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(api_settings(clean_redis_url, ledger_database_url=url))
    async with AsyncTestClient(app) as client:
        response = await client.get("/api/v1/orders/history", headers=AUTH)
        assert response.status_code == 503
        assert "ledger" in response.json()["detail"]
