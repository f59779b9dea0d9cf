"""An in-process API (Litestar's AsyncTestClient) on the session's real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared import keys
from shared.binance.rules import SymbolRules, rules_to_json
from shared.redis import Heartbeat

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def rules(symbol: str, status: str = "TRADING") -> bytes:
    base = symbol.removesuffix("USDT")
    return rules_to_json(
        SymbolRules(symbol=symbol, status=status, base_asset=base, quote_asset="USDT")
    )


def bot_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "rsi on btc",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "strategy": "rsi",
        "params": {"period": 14},
        "quote_allocation": "1000",
        "stop_loss_pct": "2",
    }
    config.update(overrides)
    return config


async def put_symbols(redis: Any) -> None:
    """Symbols as ingestion would list them (one trading, one halted)."""
    await redis.hset(
        keys.EXCHANGE_SYMBOLS,
        mapping={
            "BTCUSDT": rules("BTCUSDT"),
            "ETHUSDT": rules("ETHUSDT"),
            "LUNAUSDT": rules("LUNAUSDT", "BREAK"),
        },
    )


async def beat(redis: Any, service: str, instance: str = "i1", **figures: str) -> None:
    """A live heartbeat, for tests whose promise is the API's own reaction to one."""
    await Heartbeat(redis, service, instance, lambda: figures, ttl_s=30).beat()


def api_settings(redis_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {"redis_url": redis_url, "api_token": TOKEN, "log_format": "json"}
    values.update(overrides)
    return ApiSettings(**values)


@pytest.fixture
async def client(clean_redis_url: str, redis: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    await put_symbols(redis)
    app = create_app(api_settings(clean_redis_url))
    async with AsyncTestClient(app=app) as c:
        c.headers.update(AUTH)
        yield c
