"""Backtest jobs over the API: ``botfleet api`` and two ``botfleet backtest-worker``
processes on the session's redis-server, klines from the simulator (a real process).
A job is followed to done and its result equals ``botfleet backtest --json`` over the
same range; bad requests get the API's errors; a malformed job is dead-lettered and the
workers carry on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis

from shared import keys
from shared.backtests import parse_when
from shared.messages import BacktestJob, encode
from tests.integration.backtest.test_fetch import BOT, past_months, run
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port
from tests.support.sim import SimClient, SimFactory, sim_factory  # noqa: F401  (fixture)

TOKEN = "backtest-token-0123456789abcdef"


def _env(url: str, sim: SimClient, cache: Path, name: str) -> dict[str, str]:
    return {
        "BOTFLEET_REDIS_URL": url,
        "BOTFLEET_BINANCE_ENV": "sim",
        "BOTFLEET_BINANCE_REST_URL": sim.rest_url,
        "BOTFLEET_KLINES_CACHE": str(cache),
        "BOTFLEET_BACKTEST_PROGRESS_INTERVAL_S": "0.1",
        "BOTFLEET_INSTANCE": name,
    }


@pytest.fixture
def api(
    clean_redis_url: str,
    sim_factory: SimFactory,  # noqa: F811
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> Iterator[tuple[httpx.Client, SimClient]]:
    sim = sim_factory()
    port = free_port()
    env = _env(clean_redis_url, sim, tmp_path / "api-cache", "api")
    env |= {"BOTFLEET_API_TOKEN": TOKEN, "BOTFLEET_API_PORT": str(port)}
    processes.append(server := BotfleetProcess(["api"], tmp_path / "api.log", env).start())
    for n in (1, 2):  # several workers share the stream
        worker_env = _env(clean_redis_url, sim, tmp_path / "worker-cache", f"worker-{n}")
        processes.append(
            BotfleetProcess(["backtest-worker"], tmp_path / f"w{n}.log", worker_env).start()
        )
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/healthz", timeout=30)
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        yield client, sim


def follow(client: httpx.Client, job_id: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Every state of the job seen until it finished."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = client.get(f"/api/v1/backtests/{job_id}")
        assert resp.status_code == 200, resp.text
        seen.append(resp.json())
        if seen[-1]["status"] in ("done", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished in {timeout} s: {seen[-1]}")


def test_a_job_runs_on_a_worker_and_its_result_is_the_cli_s(
    api: tuple[httpx.Client, SimClient], tmp_path: Path
) -> None:
    client, sim = api
    start, end = past_months(2)
    body = {"bot": {**BOT, "interval": "5m"}, "from": start, "to": end, "fee_asset": "base"}
    resp = client.post("/api/v1/backtests", json=body)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] == "queued" and job["symbol"] == "BTCUSDT"

    states = follow(client, job["id"])
    final = states[-1]
    assert final["status"] == "done", final
    progress = [s["progress"] for s in states]
    assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)
    assert final["progress"] == 1 and final["worker"] in ("worker-1", "worker-2")

    result = client.get(f"/api/v1/backtests/{job['id']}/result").json()
    config = tmp_path / "bot.json"
    config.write_text(json.dumps(body["bot"]))
    cli = run(
        str(config), "--from", start, "--to", end, "--fee-asset", "base", "--json",
        "--rest-url", sim.rest_url, "--cache-dir", str(tmp_path / "cli-cache"),
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert result == json.loads(cli.stdout)
    assert result["round_trips"] > 0 and final["candles"] == result["candles"]
    assert final["round_trips"] == result["round_trips"]

    bars = client.get(f"/api/v1/backtests/{job['id']}/candles").json()
    assert 0 < len(bars) <= 5000
    assert parse_when(start) <= bars[0][0] <= result["trades"][0]["opened_at"]
    assert bars[-1][0] < parse_when(end)
    listed = client.get("/api/v1/backtests").json()
    assert [j["id"] for j in listed] == [job["id"]]


def test_a_worker_s_requests_go_through_the_fleet_s_weight_budget(
    api: tuple[httpx.Client, SimClient], clean_redis_url: str
) -> None:
    client, _sim = api
    start, end = past_months(1)
    body = {"bot": {**BOT, "interval": "1h"}, "from": start, "to": end}
    job = client.post("/api/v1/backtests", json=body).json()
    assert follow(client, job["id"])[-1]["status"] == "done"
    r = sync_redis.Redis.from_url(clean_redis_url)
    reserved = sum(int(r.get(k) or 0) for k in r.scan_iter(keys.ratelimit_weight(0)[:-1] + "*"))
    r.close()
    assert reserved >= 1 + 2  # the server time (1), one page of klines (2)


def test_bad_requests_failed_jobs_and_malformed_entries(
    api: tuple[httpx.Client, SimClient], clean_redis_url: str
) -> None:
    client, _sim = api
    start, end = past_months(1)
    unknown = {**BOT, "strategy": "macdx"}
    refused = client.post("/api/v1/backtests", json={"bot": unknown, "from": start})
    assert refused.status_code == 400
    as_bot = client.post("/api/v1/bots", json=unknown).json()
    bot_error = next(e for e in as_bot["errors"] if e["field"] == "strategy")
    job_error = next(e for e in refused.json()["errors"] if e["field"] == "bot.strategy")
    assert job_error["message"] == bot_error["message"]  # the same wording as POST /bots
    backwards = client.post("/api/v1/backtests", json={"bot": BOT, "from": end, "to": start})
    assert backwards.status_code == 400 and "to must be after from" in backwards.text
    assert httpx.get(f"{client.base_url}/api/v1/backtests").status_code == 401

    # A malformed entry and a job whose request does not validate: dead-lettered.
    r = sync_redis.Redis.from_url(clean_redis_url)
    r.xadd(keys.BACKTEST_JOBS, {"type": "backtest_job", "data": "{not json"})
    bad_id = "01HZX3K4M5N6P7Q8R9S0T1V2W3"
    r.hset(keys.backtest_job(bad_id), mapping={"status": "queued", "created_at": "1"})
    r.xadd(keys.BACKTEST_JOBS, encode(BacktestJob(job_id=bad_id, request='{"bot": {}}')))
    failed = follow(client, bad_id)[-1]
    assert failed["status"] == "failed" and "invalid backtest request" in failed["error"]
    letters = r.xrange(keys.DEAD_LETTER)
    assert len(letters) == 2
    assert all(b"stream:backtest-jobs" in fields[b"data"] for _, fields in letters)

    # A symbol the exchange does not list: the job fails with the exchange's reason.
    listed = client.post(
        "/api/v1/backtests", json={"bot": {**BOT, "symbol": "XRPUSDT"}, "from": start, "to": end}
    ).json()
    gone = follow(client, listed["id"])[-1]
    assert gone["status"] == "failed" and "symbol" in gone["error"].lower()
    assert client.get(f"/api/v1/backtests/{listed['id']}/result").status_code == 409

    # The workers carry on.
    ok = client.post(
        "/api/v1/backtests", json={"bot": {**BOT, "interval": "1d"}, "from": start, "to": end}
    ).json()
    assert follow(client, ok["id"])[-1]["status"] == "done"
    assert client.get("/api/v1/backtests/01HZX3K4M5N6P7Q8R9S0T1V2W4").status_code == 404
    r.close()


def test_a_job_left_by_a_dead_worker_is_taken_over_and_finished(
    clean_redis_url: str,
    sim_factory: SimFactory,  # noqa: F811
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    sim = sim_factory()
    r = sync_redis.Redis.from_url(clean_redis_url)
    start, end = past_months(1)
    job_id = "01HZX3K4M5N6P7Q8R9S0T1V2W5"
    request = json.dumps({"bot": {**BOT, "interval": "1d"}, "from": start, "to": end})
    r.hset(keys.backtest_job(job_id), mapping={"status": "queued", "created_at": "1"})
    r.xgroup_create(keys.BACKTEST_JOBS, keys.BACKTEST_GROUP, id="0", mkstream=True)
    r.xadd(keys.BACKTEST_JOBS, encode(BacktestJob(job_id=job_id, request=request)))
    # A worker that read the job and died before finishing it.
    taken = r.xreadgroup(keys.BACKTEST_GROUP, "dead-worker", {keys.BACKTEST_JOBS: ">"}, count=1)
    assert taken and taken[0][1]

    env = _env(clean_redis_url, sim, tmp_path / "cache", "survivor")
    env["BOTFLEET_BACKTEST_CLAIM_IDLE_MS"] = "1000"
    processes.append(BotfleetProcess(["backtest-worker"], tmp_path / "w.log", env).start())
    deadline = time.monotonic() + 60
    while r.hget(keys.backtest_job(job_id), "status") != b"done":
        assert time.monotonic() < deadline, r.hgetall(keys.backtest_job(job_id))
        time.sleep(0.1)
    assert r.hget(keys.backtest_job(job_id), "worker") == b"survivor"
    assert json.loads(r.get(keys.backtest_result(job_id)) or b"{}")["candles"] >= 28
    assert r.xpending(keys.BACKTEST_JOBS, keys.BACKTEST_GROUP)["pending"] == 0
    assert 0 < r.ttl(keys.backtest_job(job_id)) <= 7 * 86_400
    r.close()
