"""The one place that connects to Redis, and the heartbeat every service writes.

:func:`create_redis` builds an asyncio client from ``BOTFLEET_REDIS_URL`` (tcp,
``rediss://`` tls, ``unix://`` socket) whose commands retry connection errors with
capped exponential backoff and jitter. :func:`connect` also waits, bounded, until
the server answers PING, so a service started before Redis comes up by itself.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared import keys
from shared.logging import get_logger

log = get_logger(__name__)

Redis = aioredis.Redis
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def create_redis(
    url: str,
    *,
    retries: int = 5,
    backoff_base: float = 0.05,
    backoff_cap: float = 2.0,
    socket_timeout: float | None = 10.0,
    max_connections: int | None = 64,
) -> aioredis.Redis:
    """An asyncio Redis client; ``decode_responses`` is off (stream payloads are bytes)."""
    retry = Retry(EqualJitterBackoff(cap=backoff_cap, base=backoff_base), retries)
    return aioredis.Redis.from_url(
        url,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        max_connections=max_connections,
    )


async def connect(url: str, *, wait_s: float = 30.0, **kwargs: Any) -> aioredis.Redis:
    """:func:`create_redis` and wait (bounded, with backoff) until PING answers."""
    client = create_redis(url, **kwargs)
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            await client.ping()
            return client
        except REDIS_ERRORS as exc:
            if time.monotonic() >= deadline:
                await client.aclose()
                raise ConnectionError(
                    f"Redis at {redacted_url(url)} did not answer within {wait_s}s: {exc}"
                ) from exc
            log.warning(
                "redis.unreachable", url=redacted_url(url), retry_in=round(delay, 3), error=str(exc)
            )
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2) * random.uniform(0.5, 1.0) + 0.01


def redacted_url(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def now_ms() -> int:
    return int(time.time() * 1000)


class Heartbeat:
    """Writes ``health:{service}:{instance}`` every ``interval_s`` with a TTL of
    ``ttl_s``: a hash with ``ts`` (epoch ms), ``started_at`` and the service's own
    figures from ``figures()``. A missing key means the instance is dead."""

    def __init__(
        self,
        redis: aioredis.Redis,
        service: str,
        instance: str,
        figures: Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]] | None = None,
        *,
        interval_s: float = 1.0,
        ttl_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.key = keys.health(service, instance)
        self.figures = figures
        self.interval_s = interval_s
        self.ttl_ms = int(ttl_s * 1000)
        self.started_at = now_ms()
        self.fields: dict[str, Any] = {"service": service, "instance": instance}

    async def beat(self) -> None:
        values: dict[str, Any] = {**self.fields, "ts": now_ms(), "started_at": self.started_at}
        if self.figures is not None:
            extra = self.figures()
            if isinstance(extra, Awaitable):
                extra = await extra
            values.update(extra)
        mapping = {k: _field(v) for k, v in values.items()}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            pipe.hset(self.key, mapping=mapping)
            pipe.pexpire(self.key, self.ttl_ms)
            await pipe.execute()

    async def run(self) -> None:
        """Beat until cancelled; Redis errors are logged and retried next interval."""
        while True:
            try:
                await self.beat()
            except REDIS_ERRORS as exc:
                log.warning("heartbeat.failed", key=self.key, error=str(exc))
            await asyncio.sleep(self.interval_s)

    async def clear(self) -> None:
        try:
            await self.redis.delete(self.key)
        except REDIS_ERRORS:
            pass


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict | list | tuple):
        import json

        return json.dumps(value, default=str)
    return str(value)
