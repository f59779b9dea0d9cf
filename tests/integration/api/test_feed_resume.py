"""The live feed's ``id:`` lines and resume from ``Last-Event-ID``, against a real
``botfleet api`` process and redis-server: what was missed while disconnected is
replayed once, in order, then the feed goes live."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from shared import keys
from shared.messages import Event, encode
from tests.integration.api.conftest import AUTH, TOKEN
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port

Message = dict[str, str]


def messages(lines: Iterator[str]) -> Iterator[Message]:
    """SSE messages (``event``, ``id``, ``data``) from a response's lines."""
    current: Message = {}
    for line in lines:
        if not line:
            if current:
                yield current
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")


def event(message: str) -> dict[str, Any]:
    return encode(Event(kind="test", message=message))


def until_event(feed: Iterator[Message], message: str) -> list[Message]:
    """Messages read up to and including the event whose message is ``message``."""
    seen = []
    for item in feed:
        seen.append(item)
        if item.get("event") == "event" and f'"message": "{message}"' in item.get("data", ""):
            return seen
    raise AssertionError(f"feed ended before {message!r}: {seen}")


def start_api(tmp_path: Path, redis_url: str, processes: list[Any]) -> str:
    port = free_port()
    proc = BotfleetProcess(
        ["api", "--port", str(port)],
        tmp_path / "api.log",
        {"BOTFLEET_REDIS_URL": redis_url, "BOTFLEET_API_TOKEN": TOKEN},
    ).start()
    processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    proc.wait_http(base + "/healthz")
    return base


def probe_until(stop: threading.Event, redis: Any) -> threading.Thread:
    """Adds a probe event every 0.1 s until ``stop``: the first one the live reader sees
    proves it is reading (it starts reading when its first client connects)."""

    def run() -> None:
        for _ in range(300):
            if stop.wait(0.1):
                return
            redis.xadd(keys.EVENTS, event("probe"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_missed_executions_and_events_are_replayed_once_then_live(
    tmp_path: Path, clean_redis_url: str, processes: list[Any], sync_redis_client: Any
) -> None:
    base = start_api(tmp_path, clean_redis_url, processes)
    with httpx.stream("GET", base + "/api/v1/feed", headers=AUTH, timeout=15) as response:
        feed = messages(response.iter_lines())
        hello = next(feed)
        assert hello["event"] == "hello" and hello["id"]
        stop = threading.Event()
        prober = probe_until(stop, sync_redis_client)
        until_event(feed, "probe")
        stop.set()
        prober.join()
        sync_redis_client.xadd(keys.EVENTS, event("before"))
        got = until_event(feed, "before")
        last_id = got[-1]["id"]
        assert all(m["id"] for m in got if m["event"] == "event")
    for message in ("missed 1", "missed 2", "missed 3"):
        sync_redis_client.xadd(keys.EVENTS, event(message))

    headers = {**AUTH, "Last-Event-ID": last_id}
    with httpx.stream("GET", base + "/api/v1/feed", headers=headers, timeout=15) as response:
        assert response.status_code == 200
        feed = messages(response.iter_lines())
        hello = next(feed)
        assert hello["event"] == "hello" and hello["id"] == last_id
        replayed = until_event(feed, "missed 3")
        texts = [m["data"] for m in replayed if m["event"] == "event"]
        assert len(texts) == 3 and all("missed" in t for t in texts), replayed
        ids = [m["id"] for m in replayed]
        assert len(set(ids)) == 3 and ids[-1] > last_id
        sync_redis_client.xadd(keys.EVENTS, event("live"))
        assert until_event(feed, "live")[-1]["id"] > ids[-1]


def test_too_much_missed_says_resync_and_a_malformed_id_is_refused(
    tmp_path: Path, clean_redis_url: str, processes: list[Any], sync_redis_client: Any
) -> None:
    base = start_api(tmp_path, clean_redis_url, processes)
    bad = httpx.get(base + "/api/v1/feed", headers={**AUTH, "Last-Event-ID": "nope"}, timeout=15)
    assert bad.status_code == 400 and bad.json()["errors"][0]["source"] == "header"
    pipe = sync_redis_client.pipeline(transaction=False)
    for i in range(1001):
        pipe.xadd(keys.EVENTS, event(f"old {i}"))
    pipe.execute()
    headers = {**AUTH, "Last-Event-ID": "1-0_1-0"}
    with httpx.stream("GET", base + "/api/v1/feed", headers=headers, timeout=15) as response:
        feed = messages(response.iter_lines())
        assert next(feed)["event"] == "resync"
        assert next(feed)["event"] == "hello"
        first = next(feed)
        assert first["event"] == "event" and '"old 1"' in first["data"]
        assert until_event(feed, "old 1000")
