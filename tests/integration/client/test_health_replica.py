"""``botfleet health --service NAME [--instance ID]`` checks ONE replica, in the Redis it
is pointed at, and says which: a runner whose main loop stalled is unhealthy beside a
healthy one (its heartbeat task beating on proves nothing); compose.yaml's checks are
per replica and the simulator's clients wait for it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.redis import Heartbeat, now_ms
from tests.integration.deploy.test_compose import ROOT, dotenv, load_compose
from tests.support.processes import base_env


def health(redis_url: str | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    extra = {"BOTFLEET_REDIS_URL": "redis://127.0.0.1:1/0", **env}  # nothing listens on 1
    argv = [sys.executable, "-m", "services", "health", *args] + (
        ["--redis-url", redis_url] if redis_url else []
    )
    return subprocess.run(
        argv, env=base_env(extra), capture_output=True, text=True, timeout=60, check=False
    )


async def runner_beat(redis: Any, instance: str, loop_age_ms: int) -> None:
    """A runner's heartbeat as its Heartbeat writes it, its read loop last passing
    ``loop_age_ms`` ago."""
    figures = {"bots": 3, "loop_at": now_ms() - loop_age_ms}
    await Heartbeat(redis, "runner", instance, lambda: figures, ttl_s=60).beat()


async def test_each_replica_is_checked_on_its_own_loop(redis: Any, clean_redis_url: str) -> None:
    await runner_beat(redis, "runner-a", loop_age_ms=100)
    await runner_beat(redis, "runner-b", loop_age_ms=30_000)

    good = health(clean_redis_url, "--service", "runner", "--instance", "runner-a")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "runner/runner-a at redis://127.0.0.1:" in good.stdout and "healthy" in good.stdout

    frozen = health(clean_redis_url, "--service", "runner", "--instance", "runner-b")
    assert frozen.returncode == 1
    assert "runner/runner-b" in frozen.stdout
    assert "main loop has not progressed for" in frozen.stdout

    absent = health(clean_redis_url, "--service", "runner", "--instance", "runner-c")
    assert absent.returncode == 1
    assert "no live heartbeat" in absent.stdout and "runner-a, runner-b" in absent.stdout


async def test_default_instance_is_botfleet_instance_else_this_host(
    redis: Any, clean_redis_url: str
) -> None:
    await runner_beat(redis, "named-1", loop_age_ms=30_000)
    named = health(clean_redis_url, "--service", "runner", BOTFLEET_INSTANCE="named-1")
    assert named.returncode == 1 and "runner/named-1" in named.stdout

    # Compose sets no BOTFLEET_INSTANCE: a service names itself {hostname}-{pid}, and the
    # check run in its container finds it by the container's hostname.
    host = socket.gethostname()
    await runner_beat(redis, f"{host}-7", loop_age_ms=50)
    mine = health(clean_redis_url, "--service", "runner")
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert f"runner/{host}-7" in mine.stdout


async def test_the_redis_url_is_the_one_pointed_at_and_printed(
    redis: Any, clean_redis_url: str
) -> None:
    await runner_beat(redis, "runner-a", loop_age_ms=10)
    # BOTFLEET_REDIS_URL (an unreachable default here) is what it reads without the flag
    unreachable = health(None, "--service", "runner", "--instance", "runner-a")
    assert unreachable.returncode == 1
    assert "redis://127.0.0.1:1/0" in unreachable.stdout
    assert "cannot read heartbeats" in unreachable.stdout
    via_env = health(
        None, "--service", "runner", "--instance", "runner-a", BOTFLEET_REDIS_URL=clean_redis_url
    )
    assert via_env.returncode == 0 and clean_redis_url in via_env.stdout


async def test_an_instance_reporting_ok_0_is_unhealthy(redis: Any, clean_redis_url: str) -> None:
    figures = {"ok": 0, "exchange": "auth_failed", "loop_at": now_ms()}
    await Heartbeat(redis, "gateway", "gw-1", lambda: figures, ttl_s=60).beat()
    done = health(clean_redis_url, "--service", "gateway", "--instance", "gw-1")
    assert done.returncode == 1 and "ok=0" in done.stdout


def test_compose_checks_each_replica_and_waits_for_the_simulator() -> None:
    compose = load_compose(dotenv(ROOT / ".env.example"))
    services = compose["services"]
    for name in ("ingestion", "runner", "gateway", "ledger", "api"):
        # no --instance: the replica's own, found by its container's hostname
        assert services[name]["healthcheck"]["test"] == [
            "CMD",
            "botfleet",
            "health",
            "--service",
            name,
        ]
    for name in ("ingestion", "gateway"):
        sim = services[name]["depends_on"]["exchange-sim"]
        assert sim == {"condition": "service_healthy", "required": False}
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/api/v3/ping" in " ".join(services["exchange-sim"]["healthcheck"]["test"])
    ignored = (Path(ROOT) / ".dockerignore").read_text().split()
    assert "**/node_modules" in ignored  # services/api/web/node_modules stays out
