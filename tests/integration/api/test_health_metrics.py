"""Honest health and per-bot metrics over real processes: a paper gateway fills a bot's
intent and its heartbeat carries the signal -> ack latency that ``/metrics`` exposes as
a histogram beside the bot's own figures; the health report pings the simulator the
fleet is configured for and says so when it is gone."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis as sync_redis
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from shared import keys
from shared.binance.rules import rules_to_json
from shared.messages import ExecutionReport, decode, encode
from shared.redis import now_ms
from shared.strategies.accounting import BotBook
from tests.integration.api.conftest import AUTH, TOKEN, api_settings, beat, bot_config
from tests.integration.gateway.helpers import BTC, intent
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port
from tests.support.sim import SimFactory, sim_factory  # noqa: F401  (fixture)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text (None when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_show_a_bots_figures_and_the_gateways_signal_to_ack_latency(
    sync_redis_client: sync_redis.Redis,
    clean_redis_url: str,
    tmp_path: Path,
    processes: list[BotfleetProcess],
) -> None:
    r = sync_redis_client
    r.hset(keys.EXCHANGE_SYMBOLS, "BTCUSDT", rules_to_json(BTC))
    r.set(keys.price("BTCUSDT"), "50000")
    port = free_port()
    api = BotfleetProcess(
        ["api", "--port", str(port)], tmp_path / "api.log",
        {"BOTFLEET_REDIS_URL": clean_redis_url, "BOTFLEET_API_TOKEN": TOKEN},
    ).start()  # fmt: skip
    gateway = BotfleetProcess(
        ["gateway"], tmp_path / "gateway.log",
        {
            "BOTFLEET_REDIS_URL": clean_redis_url,
            "BOTFLEET_INSTANCE": "gw-1",
            "BOTFLEET_TRADING_MODE": "paper",
            "BOTFLEET_PAPER_BALANCES": "USDT=100000",
        },
    ).start()  # fmt: skip
    processes.extend([api, gateway])
    base = f"http://127.0.0.1:{port}"
    api.wait_http(base + "/healthz")
    with httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
        created = client.post("/api/v1/bots", json=bot_config())
        assert created.status_code == 201, created.text
        bot_id = created.json()["id"]
        gateway.wait_for(lambda: r.exists(keys.health("gateway", "gw-1")) == 1, 30, "heartbeat")

        # The runner's decision, as it sends it: stamped with its creation time.
        sent = msgspec.structs.replace(intent(1, bot=bot_id, qty="0.01"), created_at=now_ms())
        r.xadd(keys.ORDER_INTENTS, encode(sent))
        [(_id, fields)] = wait(lambda: r.xrange(keys.EXECUTIONS), 30, "the gateway's report")
        report = decode(fields)
        assert isinstance(report, ExecutionReport) and report.final

        # The runner's book of the bot after that fill, in the hashes the runner writes.
        book = BotBook(
            allocation=Decimal(1000), base_asset="BTC", quote_asset="USDT", symbol="BTCUSDT"
        )
        book.apply(report)
        r.hset(keys.bot_stats(bot_id), mapping=book.to_stats_hash())
        r.hset(keys.bot_position(bot_id), mapping=book.to_position_hash())

        def scraped() -> str | None:
            text = client.get("/metrics").text
            count = sample(text, "botfleet_signal_to_ack_seconds_count")
            return text if count else None

        text = wait(scraped, 10, "the latency histogram in /metrics")
    labels = {"bot": bot_id, "symbol": "BTCUSDT"}
    assert sample(text, "botfleet_bot_fills_total", **labels) == 1.0
    assert sample(text, "botfleet_bot_rejections_total", **labels) == 0.0
    assert sample(text, "botfleet_bot_round_trips_total", **labels) == 0.0
    assert sample(text, "botfleet_bot_equity", **labels) == float(book.equity)
    value = sample(text, "botfleet_bot_position_value", **labels)
    assert value is not None and value > 0
    assert sample(text, "botfleet_signal_to_ack_seconds_count") == 1.0
    assert sample(text, "botfleet_signal_to_ack_seconds_bucket", le="+Inf") == 1.0
    latency = sample(text, "botfleet_signal_to_ack_seconds_sum")
    assert latency is not None and 0 <= latency < 30
    assert re.search(r'botfleet_bots\{status="stopped"\} 1\.0', text)


async def test_health_pings_the_simulator_and_reports_it_gone(
    clean_redis_url: str,
    redis: Any,
    sim_factory: SimFactory,  # noqa: F811
) -> None:
    sim = sim_factory()
    for service in ("ingestion", "runner", "gateway"):
        await beat(redis, service, loop_at=str(now_ms()))
    settings = api_settings(clean_redis_url, binance_env="sim", binance_rest_url=sim.rest_url)
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers.update(AUTH)
        health = (await client.get("/api/v1/bots/health")).json()
        assert health["exchange"]["ok"] is True, health["exchange"]
        assert health["exchange"]["url"] == sim.rest_url + "/api/v3/ping"
        assert health["status"] == "ok", health
        sim.stop()
        health = (await client.get("/api/v1/bots/health")).json()
        assert health["exchange"]["ok"] is False and health["exchange"]["error"]
        assert health["status"] == "degraded"
