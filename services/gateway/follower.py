"""Follows resting LIMIT orders until they end (``orders:open:{mode}``).

Paper: every ``interval_s`` each resting order is matched against ``price:{SYMBOL}``
(maker fee) and completed through ``finalize.lua`` when the price crosses. Live: the
exchange is polled by client order id (REST; the WebSocket user data stream is not
used yet) and a final venue status completes the order. Several instances may follow
the same set: ``finalize.lua`` completes an order once, whoever gets there first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from shared.logging import get_logger
from shared.redis import REDIS_ERRORS

log = get_logger(__name__)


async def follow(step: Callable[[], Awaitable[Any]], interval_s: float, name: str) -> None:
    """Run ``step`` every ``interval_s`` until cancelled; a failing step is logged."""
    while True:
        try:
            await step()
        except REDIS_ERRORS as exc:
            log.warning("follower.redis_error", follower=name, error=str(exc))
        await asyncio.sleep(interval_s)
