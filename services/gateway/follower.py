"""Follows resting LIMIT orders until they end (``orders:open:{mode}``).

Paper: every ``interval_s`` each resting order is matched against ``price:{SYMBOL}``
(maker fee) and completed through ``finalize.lua`` when the price crosses. Live: the
exchange is asked by client order id (REST) whenever the WebSocket user data stream
reports a change to one of our orders, and on a timer as the fallback; a final venue
status completes the order. Several instances may follow
the same set: ``finalize.lua`` completes an order once, whoever gets there first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from shared.logging import get_logger
from shared.redis import REDIS_ERRORS

log = get_logger(__name__)


async def follow(
    step: Callable[[], Awaitable[Any]],
    interval_s: float | Callable[[], float],
    name: str,
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``step`` every ``interval_s`` (a number or a function giving it), or sooner
    when ``wake`` is set, until cancelled; a failing step is logged, never fatal (one
    resting order that cannot be handled must not stop the others, nor the gateway)."""
    while True:
        try:
            await step()
        except REDIS_ERRORS as exc:
            log.warning("follower.redis_error", follower=name, error=str(exc))
        except Exception:  # isolation boundary: the next step tries again
            log.exception("follower.step_failed", follower=name)
        interval = interval_s() if callable(interval_s) else interval_s
        if wake is None:
            await asyncio.sleep(interval)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)
        wake.clear()
