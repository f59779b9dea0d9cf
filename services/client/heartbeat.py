"""``botfleet health --service NAME``: is there a live heartbeat of NAME in Redis?

Reads the heartbeats directly (the instances in ``health:index``, then each one's
``health:NAME:INSTANCE``; no API needed, so the API's own container check works too);
a heartbeat is live when its key exists and its ``ts`` is recent."""

from __future__ import annotations

import time
from typing import Any

import redis as sync_redis

from shared import keys
from shared.settings import Settings, load_settings

MAX_AGE_MS = 15_000


def service_alive(service: str) -> tuple[bool, str]:
    settings = load_settings(Settings)
    client: Any = sync_redis.Redis.from_url(
        settings.redis_url, socket_timeout=3, socket_connect_timeout=3
    )
    try:
        now = int(time.time() * 1000)
        members = client.zrangebyscore(keys.HEALTH_INDEX, now - MAX_AGE_MS, "+inf")
        live = []
        for member in members:
            svc, _, instance = member.decode().partition(":")
            if svc != service:
                continue
            ts = client.hget(keys.health(svc, instance), "ts")
            if ts is not None and now - int(ts) <= MAX_AGE_MS:
                live.append(instance)
    except (sync_redis.RedisError, OSError, ValueError) as exc:
        return False, f"{service}: cannot read heartbeats: {exc}"
    finally:
        client.close()
    if not live:
        return False, f"{service}: no live heartbeat"
    return True, f"{service}: alive ({', '.join(sorted(live))})"
