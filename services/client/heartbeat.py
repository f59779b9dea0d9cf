"""``botfleet health --service NAME [--instance ID]``: is THAT replica healthy?

For container healthchecks: one replica is checked, never "any live instance", so a
frozen runner beside a healthy one is reported by its own check. The instance is
``--instance``, else ``BOTFLEET_INSTANCE`` when set, else this host's: instances are
named ``{hostname}-{pid}`` by default (shared/settings.py), and a container's
hostname is its own, so its service's instance is the one whose name starts with it
(the newest, after a restart inside the container).

Reads the heartbeat keys in the Redis the CLI is pointed at (``--redis-url``, else
``BOTFLEET_REDIS_URL``) directly, no API needed, and judges the heartbeat with the
rule the API's health report applies (:func:`shared.health.judge`: a fresh ``ts``, a
main loop that progresses, ``ok`` not 0). Prints which Redis and instance it checked.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis as sync_redis

from shared import keys
from shared.health import HEARTBEAT_MAX_AGE_MS, judge
from shared.redis import redacted_url
from shared.settings import Settings, load_settings


@dataclass(frozen=True, slots=True)
class Target:
    """Which instance to check: an exact name, or the newest whose name starts with
    ``host-`` (or is ``host``)."""

    exact: str | None = None
    host: str | None = None

    def matches(self, instance: str) -> bool:
        if self.exact is not None:
            return instance == self.exact
        assert self.host is not None
        return instance == self.host or instance.startswith(self.host + "-")

    def describe(self) -> str:
        return self.exact if self.exact is not None else f"{self.host}-* (this host)"


def default_target(instance: str | None) -> Target:
    if instance:
        return Target(exact=instance)
    configured = os.environ.get("BOTFLEET_INSTANCE")
    if configured:
        return Target(exact=configured)
    return Target(host=socket.gethostname())


def check_instance(
    service: str, instance: str | None = None, redis_url: str | None = None
) -> tuple[bool, str]:
    """(healthy, one line saying what was checked and found)."""
    url = redis_url or load_settings(Settings).redis_url
    target = default_target(instance)
    where = f"{service}/{target.describe()} at {redacted_url(url)}"
    client: Any = sync_redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        now = int(time.time() * 1000)
        members = client.zrangebyscore(keys.HEALTH_INDEX, now - HEARTBEAT_MAX_AGE_MS, "+inf")
        names = []
        for member in members:
            svc, _, name = member.decode().partition(":")
            if svc == service:
                names.append(name)
        candidates = [n for n in names if target.matches(n)]
        with client.pipeline(transaction=False) as pipe:
            for name in candidates:
                pipe.hgetall(keys.health(service, name))
            beats = [
                {k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute() if raw
            ]
    except (sync_redis.RedisError, OSError, ValueError) as exc:
        return False, f"{where}: cannot read heartbeats: {exc}"
    finally:
        client.close()
    if not beats:
        others = ", ".join(sorted(n for n in names if not target.matches(n))) or "none"
        return False, f"{where}: no live heartbeat (other live {service} instances: {others})"
    beat = max(beats, key=lambda b: int(b.get("started_at") or 0))
    verdict = judge(beat, now)
    checked = f"{service}/{beat.get('instance', '?')} at {redacted_url(url)}"
    if not verdict.healthy:
        return False, f"{checked}: unhealthy: {verdict.reason()}"
    loop = "" if verdict.loop_age_ms is None else f", loop {verdict.loop_age_ms} ms ago"
    return True, f"{checked}: healthy (heartbeat {verdict.age_ms} ms ago{loop})"
