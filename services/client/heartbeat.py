"""``botfleet health --service NAME``: is there a live heartbeat of NAME in Redis?

Reads ``health:NAME:*`` directly (no API needed, so the API's own container check
works too); a heartbeat is live when its key exists and its ``ts`` is recent."""

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
        found = list(client.scan_iter(match=keys.health_pattern(service), count=500))
        now = int(time.time() * 1000)
        live = []
        for key in found:
            ts = client.hget(key, "ts")
            if ts is not None and now - int(ts) <= MAX_AGE_MS:
                live.append(key.decode().split(":", 2)[2])
    except (sync_redis.RedisError, OSError, ValueError) as exc:
        return False, f"{service}: cannot read heartbeats: {exc}"
    finally:
        client.close()
    if not live:
        return False, f"{service}: no live heartbeat"
    return True, f"{service}: alive ({', '.join(sorted(live))})"
