"""The Litestar application: routes, auth, errors, CORS, body limit, metrics, and a
lifespan that owns the Redis pool and the live-feed reader.

Reads top to bottom: build the app from settings; on start-up create the Redis client
(without waiting: a Redis that is down gives 503s, not a dead API) and start the feed
reader; on shutdown cancel the reader and close the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from services.api.auth import make_auth
from services.api.controllers.backtests import BacktestController
from services.api.controllers.bots import BotController
from services.api.controllers.dashboard import (
    favicon,
    index,
    redoc,
    schema_render_plugins,
    static_router,
)
from services.api.controllers.history import HistoryController
from services.api.controllers.market import MarketController
from services.api.controllers.orders import OrderController
from services.api.controllers.pages import PagesController
from services.api.controllers.risk import RiskController
from services.api.controllers.strategies import StrategyController
from services.api.controllers.system import SystemController, liveness
from services.api.errors import exception_handlers
from services.api.feed import FeedHub
from services.api.fleet import Fleet
from services.api.ledger import LedgerReader
from services.api.metrics import ApiMetrics
from services.api.repository import Repository
from services.api.settings import ApiSettings
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS, Heartbeat, create_redis
from shared.service import cancel_tasks
from shared.settings import BinanceEnv

log = get_logger(__name__)

SCHEMA_PATH = "/schema"


def create_app(settings: ApiSettings) -> Litestar:
    settings.check_exposure()
    metrics = ApiMetrics()
    state: dict[str, Any] = {}
    ledger = LedgerReader(settings.ledger_database_url)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        # Few, short retries: an API request should fail fast with 503, not hang.
        redis = create_redis(settings.redis_url, retries=1, socket_timeout=5.0, max_connections=256)
        repo = Repository(redis)
        try:
            await redis.ping()
            indexed = await repo.index_names()
            if indexed:
                log.info("api.bot_names_indexed", bots=indexed)
        except REDIS_ERRORS as exc:
            log.warning("api.redis_unreachable_at_start", error=str(exc))
        hub = FeedHub(redis)
        state.update(
            repo=repo,
            fleet=Fleet(
                repo,
                max_wait_s=settings.api_max_wait_s,
                max_quote=settings.api_max_quote_allocation,
                allowed_symbols=settings.allowed_symbols,
                # The health report pings the simulator when the fleet trades on it.
                exchange_url=settings.rest_url if settings.binance_env == BinanceEnv.SIM else None,
            ),
            hub=hub,
        )
        heartbeat = Heartbeat(
            redis, "api", settings.instance, lambda: {"feed_clients": len(hub.subscribers)}
        )
        tasks = [
            asyncio.create_task(hub.run(), name="feed-reader"),
            asyncio.create_task(heartbeat.run(), name="heartbeat"),
        ]
        log.info("api.ready")
        try:
            yield
        finally:
            await cancel_tasks(tasks)
            await heartbeat.clear()
            await redis.aclose()
            await ledger.close()

    cors = (
        CORSConfig(
            allow_origins=settings.api_cors_origins, allow_headers=["Authorization", "Content-Type"]
        )
        if settings.api_cors_origins
        else None
    )
    # The schema declares bearer security exactly where the auth middleware checks it: on this
    # router's routes when a token is set; liveness, the dashboard shell and the schema
    # itself are public (and declared so).
    bearer: list[dict[str, list[str]]] | None = (
        [{"bearer": []}] if settings.token is not None else None
    )
    protected = Router(
        path="/",
        route_handlers=[
            BotController,
            StrategyController,
            MarketController,
            HistoryController,
            OrderController,
            PagesController,
            RiskController,
            SystemController,
            BacktestController,
        ],
        security=bearer,
    )
    return Litestar(
        route_handlers=[protected, liveness, index, favicon, redoc, static_router],
        lifespan=[lifespan],
        dependencies={
            "repo": Provide(lambda: state["repo"], sync_to_thread=False),
            "fleet": Provide(lambda: state["fleet"], sync_to_thread=False),
            "feed_hub": Provide(lambda: state["hub"], sync_to_thread=False),
            "api_metrics": Provide(lambda: metrics, sync_to_thread=False),
            "trading_mode": Provide(lambda: settings.trading_mode, sync_to_thread=False),
            "ledger": Provide(lambda: ledger, sync_to_thread=False),
        },
        exception_handlers=exception_handlers(),
        cors_config=cors,
        request_max_body_size=settings.api_max_body_bytes,
        middleware=[metrics.middleware, make_auth(settings.token, (SCHEMA_PATH,))],
        openapi_config=OpenAPIConfig(
            title="botfleet control API",
            version="1",
            path=SCHEMA_PATH,
            render_plugins=schema_render_plugins(),
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
                if bearer
                else None
            ),
        ),
        debug=False,
    )
