"""The connection factory reaches Redis over TCP and a unix socket, waits (bounded)
for a server that is not up yet, and the heartbeat key lives only while beats come."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared import keys
from shared.redis import Heartbeat, connect, heartbeats, redacted_url
from tests.support.redis_server import RedisServer, free_port


async def test_connects_over_unix_socket_and_tcp(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r").start()
    try:
        for url in (server.unix_url, server.url):
            client = await connect(url, wait_s=5)
            await client.set("k", "v")
            assert await client.get("k") == b"v"
            await client.aclose()
    finally:
        server.stop()


async def test_connect_waits_for_a_late_server(tmp_path: Path) -> None:
    port = free_port()
    server = RedisServer(tmp_path / "late", port=port)

    async def start_later() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)

    starter = asyncio.create_task(start_later())
    try:
        client = await connect(f"redis://127.0.0.1:{port}/0", wait_s=10)
        assert await client.ping()
        await client.aclose()
    finally:
        await starter
        server.stop()


async def test_connect_gives_up_with_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}.*did not answer"):
        await connect(f"redis://:hunter22@127.0.0.1:{port}/0", wait_s=0.3)


def test_password_never_printed_from_url() -> None:
    assert redacted_url("redis://:hunter22@host:6379/0") == "redis://***@host:6379/0"


async def test_heartbeat_expires_when_beats_stop(redis) -> None:
    beat = Heartbeat(
        redis, "ingestion", "node-1", lambda: {"streams": 4, "connected": True}, ttl_s=0.3
    )
    await beat.beat()
    fields = await redis.hgetall(keys.health("ingestion", "node-1"))
    assert fields[b"streams"] == b"4" and fields[b"connected"] == b"1" and int(fields[b"ts"]) > 0
    await asyncio.sleep(0.5)
    assert await redis.exists(keys.health("ingestion", "node-1")) == 0


async def test_live_instances_are_found_through_the_index_without_a_scan(redis) -> None:
    runner_a = Heartbeat(redis, "runner", "a", lambda: {"bots": 3})
    runner_b = Heartbeat(redis, "runner", "b", ttl_s=0.2)
    gateway = Heartbeat(redis, "gateway", "g")
    for beat in (runner_a, runner_b, gateway):
        await beat.beat()
    found = {b["instance"]: b for b in await heartbeats(redis, "runner")}
    assert set(found) == {"a", "b"} and found["a"]["bots"] == "3"
    assert {b["service"] for b in await heartbeats(redis)} == {"runner", "gateway"}
    await asyncio.sleep(0.3)  # b stopped beating: its health key expired, the index lags
    assert [b["instance"] for b in await heartbeats(redis, "runner")] == ["a"]
    await runner_a.clear()  # a clean exit leaves the index at once
    assert await heartbeats(redis, "runner") == []
    assert await redis.zscore(keys.HEALTH_INDEX, keys.health_member("runner", "a")) is None
    assert [b["instance"] for b in await heartbeats(redis, "gateway")] == ["g"]
