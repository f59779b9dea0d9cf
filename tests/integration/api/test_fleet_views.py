"""Risk halt/resume with its event, health with stale symbols and bots, the summary,
Prometheus metrics, and the live feed pushing executions as they land."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from shared import keys
from shared.messages import Event, ExecutionReport, ExecutionStatus, Side, decode_as, encode
from shared.redis import now_ms
from tests.integration.api.conftest import AUTH, TOKEN, beat, bot_config
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port

Client = AsyncTestClient[Any]


async def test_halt_stores_the_reason_emits_an_event_and_resume_clears_it(
    client: Client, redis: Any
) -> None:
    response = await client.post("/api/v1/risk/halt", json={"reason": "exchange incident"})
    assert response.status_code == 200 and response.json()["halted"] is True
    assert await redis.get(keys.RISK_HALT) == b"exchange incident"
    [(_, fields)] = await redis.xrange(keys.EVENTS)
    assert decode_as(fields, Event).kind == "risk.halt"
    assert (await client.post("/api/v1/risk/resume")).json()["halted"] is False
    assert await redis.get(keys.RISK_HALT) is None
    assert await redis.xlen(keys.EVENTS) == 2


async def test_risk_limits_are_validated_and_replaced(client: Client, redis: Any) -> None:
    bad = await client.put("/api/v1/risk/limits", json={"max_drawdown_pct": "150"})
    assert bad.status_code == 400 and "max_drawdown_pct" in bad.text
    ok = await client.put(
        "/api/v1/risk/limits", json={"max_exposure_quote": "5000", "max_open_positions": 3}
    )
    assert ok.status_code == 200, ok.text
    assert await redis.hgetall(keys.RISK_LIMITS) == {
        b"max_exposure_quote": b"5000",
        b"max_open_positions": b"3",
    }


async def test_health_names_dead_services_and_stale_symbols_and_bots(
    client: Client, redis: Any
) -> None:
    await beat(redis, "runner", "r1", bots="2")
    await redis.hset(
        keys.MARKET_LAST_UPDATE,
        mapping={"BTCUSDT": str(now_ms() - 600_000), "ETHUSDT": str(now_ms())},
    )
    bot = (await client.post("/api/v1/bots", json=bot_config())).json()
    await redis.hset(
        keys.bot(bot["id"]),
        mapping={"stale": "BTCUSDT", "status_reason": "stale: BTCUSDT 1m candle 600s old"},
    )
    health = (await client.get("/api/v1/bots/health")).json()
    assert health["status"] == "degraded"
    assert health["services"]["runner"][0]["figures"] == {"bots": "2"}
    assert set(health["missing"]) == {"ingestion", "gateway"}
    assert list(health["stale_symbols"]) == ["BTCUSDT"]
    assert health["stale_bots"] == [
        {"id": bot["id"], "symbols": ["BTCUSDT"], "reason": "stale: BTCUSDT 1m candle 600s old"}
    ]
    shown = (await client.get(f"/api/v1/bots/{bot['id']}")).json()
    assert shown["stale"] == ["BTCUSDT"] and shown["status_reason"].startswith("stale")


async def test_summary_adds_up_stats_and_values_positions_at_the_last_price(
    client: Client, redis: Any
) -> None:
    a = (await client.post("/api/v1/bots", json=bot_config(name="a"))).json()
    b = (await client.post("/api/v1/bots", json=bot_config(name="b"))).json()
    await redis.hset(
        keys.bot_stats(a["id"]),
        mapping={"equity": "1010", "realized_pnl": "10", "total_pnl": "12", "trades": "3"},
    )
    await redis.hset(
        keys.bot_stats(b["id"]),
        mapping={"equity": "990", "realized_pnl": "-10", "total_pnl": "-10", "trades": "1"},
    )
    await redis.hset(keys.bot_position(a["id"]), mapping={"qty": "0.5", "entry_price": "100"})
    await redis.set(keys.price("BTCUSDT"), "104")
    s = (await client.get("/api/v1/bots/summary")).json()
    assert (s["bots"], s["open_positions"], s["trades"]) == (2, 1, 4)
    assert (Decimal(s["equity"]), Decimal(s["total_pnl"]), Decimal(s["exposure"])) == (2000, 2, 52)


async def test_metrics_expose_bots_by_status_stream_counters_and_latency(
    client: Client, redis: Any
) -> None:
    await client.post("/api/v1/bots", json=bot_config())
    await redis.xadd(keys.ORDER_INTENTS, {"type": "x", "data": "{}"})
    await redis.xgroup_create(keys.ORDER_INTENTS, keys.GATEWAY_GROUP, id="0")
    text = (await client.get("/metrics")).text
    assert 'botfleet_bots{status="stopped"} 1.0' in text
    assert 'botfleet_stream_entries_added_total{stream="intents"} 1.0' in text
    assert "botfleet_gateway_lag 1.0" in text
    assert (
        'botfleet_api_request_seconds_count{method="POST",route="/api/v1/bots",status="201"} 1.0'
        in text
    )


def test_feed_pushes_an_execution_report_as_it_lands(
    tmp_path: Path, clean_redis_url: str, processes: list[Any], sync_redis_client: Any
) -> None:
    port = free_port()
    proc = BotfleetProcess(
        ["api", "--port", str(port)],
        tmp_path / "api.log",
        {"BOTFLEET_REDIS_URL": clean_redis_url, "BOTFLEET_API_TOKEN": TOKEN},
    ).start()
    processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    proc.wait_http(base + "/healthz")
    report = ExecutionReport(
        intent_id="b:1:buy",
        client_order_id="bf-1",
        bot_id="01HZZZZZZZZZZZZZZZZZZZZZZZ",
        symbol="BTCUSDT",
        side=Side.BUY,
        status=ExecutionStatus.FILLED,
        final=True,
        executed_qty=Decimal("0.1"),
        ts=now_ms(),
    )
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", base + "/api/v1/feed", headers=AUTH, timeout=15) as response:
        assert response.status_code == 200
        event = None
        publisher = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "hello":
                publisher = threading.Timer(
                    0.2, sync_redis_client.xadd, (keys.EXECUTIONS, encode(report))
                )
                publisher.start()
            elif line.startswith("data:") and event == "execution":
                seen.append(json.loads(line.split(":", 1)[1]))
                break
        assert publisher is not None
        publisher.join()
    assert seen and seen[0]["intent_id"] == "b:1:buy" and seen[0]["executed_qty"] == "0.1"


async def test_balances_show_paper_units_and_live_strings_as_exact_decimals(
    client: Client, redis: Any
) -> None:
    # paper: integer units of 1e-8, as the gateway's scripts keep them; live: the venue's
    await redis.hset(keys.balances("paper"), mapping={"USDT:free": "100000000000000001"})
    await redis.hset(keys.balances("live"), mapping={"USDT:free": "1000000000.00000001"})
    paper = (await client.get("/api/v1/balances", params={"mode": "paper"})).json()
    live = (await client.get("/api/v1/balances", params={"mode": "live"})).json()
    assert paper["assets"] == {"USDT:free": "1000000000.00000001"}
    assert live["assets"] == {"USDT:free": "1000000000.00000001"}
