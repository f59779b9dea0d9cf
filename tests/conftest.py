"""Session-wide fixtures: a private redis-server (one per test worker), a clean
database for every test, and real botfleet processes that are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from shared.redis import create_redis
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import env_url_override, session_redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's private Redis (flushed before every test that uses it)."""
    override = env_url_override()
    if override:
        yield override
        return
    with session_redis(tmp_path_factory.mktemp("redis-session")) as url:
        yield url


@pytest.fixture
def clean_redis_url(redis_url: str) -> str:
    client = sync_redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    return redis_url


@pytest.fixture
def sync_redis_client(clean_redis_url: str) -> Iterator[sync_redis.Redis]:
    client = sync_redis.Redis.from_url(clean_redis_url)
    yield client
    client.close()


@pytest.fixture
async def redis(clean_redis_url: str) -> AsyncIterator[object]:
    client = create_redis(clean_redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[BotfleetProcess]]:
    """A list to append started processes to; each is killed at the end, and a failing
    test prints their logs."""
    started: list[BotfleetProcess] = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for proc in started:
        proc.kill()
        if failed:
            print(f"\n===== log of botfleet {' '.join(proc.args)} =====\n{proc.log_text()[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
