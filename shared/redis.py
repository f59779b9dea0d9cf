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
# How long an instance stays in the health index after its last beat (its health key
# expires within seconds; this only bounds the index's size).
INDEX_KEEP_MS = 60_000
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
        self.member = keys.health_member(service, instance)
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
            pipe.zadd(keys.HEALTH_INDEX, {self.member: values["ts"]})
            # Instances gone for long leave the index (their health keys expired).
            pipe.zremrangebyscore(keys.HEALTH_INDEX, "-inf", values["ts"] - INDEX_KEEP_MS)
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
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.key)
                pipe.zrem(keys.HEALTH_INDEX, self.member)
                await pipe.execute()
        except REDIS_ERRORS:
            pass


async def heartbeats(redis: aioredis.Redis, service: str = "*") -> list[dict[str, str]]:
    """The health hashes of the live instances of ``service`` ("*": every service),
    each with ``service`` and ``instance``; found through :data:`keys.HEALTH_INDEX`."""
    since = now_ms() - INDEX_KEEP_MS
    members = [_text(m) for m in await redis.zrangebyscore(keys.HEALTH_INDEX, since, "+inf")]
    named: list[tuple[str, str]] = []
    for member in members:
        svc, sep, inst = member.partition(":")
        if sep and service in ("*", svc):
            named.append((svc, inst))
    if not named:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for svc, inst in named:
            pipe.hgetall(keys.health(svc, inst))
        raw = await pipe.execute()
    beats = []
    for (svc, inst), fields in zip(named, raw, strict=True):
        if fields:  # expired: the instance is dead, whatever the index says
            item = {_text(k): _text(v) for k, v in fields.items()}
            item.setdefault("service", svc)
            item.setdefault("instance", inst)
            beats.append(item)
    return beats


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict | list | tuple):
        import json

        return json.dumps(value, default=str)
    return str(value)
