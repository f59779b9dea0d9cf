"""Auth on every protected route (taken from the app's own route table, so a new route
cannot escape), and the refusal to listen on a reachable address without a token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from services.api.app import SCHEMA_PATH, create_app
from tests.integration.api.conftest import TOKEN, api_settings
from tests.support.processes import BotfleetProcess

# What may be reached without a token: liveness, the dashboard's static shell and the
# OpenAPI documentation. Nothing here reads fleet state.
PUBLIC_PATHS = {"/healthz", "/", "/favicon.ico"}
PUBLIC_PREFIXES = ("/static", SCHEMA_PATH)
SAMPLE = {
    "bot_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
    "symbol": "BTCUSDT",
    "name": "rsi",
    "client_order_id": "bf-1",
}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", lambda m: SAMPLE.get(m.group(1), "x"), path)


async def test_every_route_but_the_public_ones_refuses_a_missing_or_wrong_token(
    clean_redis_url: str,
) -> None:
    app = create_app(api_settings(clean_redis_url))
    checked = 0
    async with AsyncTestClient(app=app) as client:
        for route in app.routes:
            if route.path in PUBLIC_PATHS or route.path.startswith(PUBLIC_PREFIXES):
                continue
            for method in sorted(getattr(route, "methods", {"GET"}) - {"OPTIONS", "HEAD"}):
                path = _concrete(route.path)
                for headers in (
                    {},
                    {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": TOKEN},
                ):
                    response = await client.request(method, path, headers=headers)
                    assert response.status_code == 401, (
                        method,
                        path,
                        headers,
                        response.status_code,
                    )
                checked += 1
        assert checked >= 20
        assert (await client.get("/healthz")).status_code == 200
        good = await client.get("/api/v1/bots", headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200


async def test_body_over_the_limit_is_refused(clean_redis_url: str) -> None:
    app = create_app(api_settings(clean_redis_url, api_max_body_bytes=2048))
    async with AsyncTestClient(app=app) as client:
        response = await client.post(
            "/api/v1/bots",
            content=b'{"name":"' + b"x" * 10_000 + b'"}',
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert response.status_code == 413


async def test_cors_is_closed_unless_configured(clean_redis_url: str) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    async with AsyncTestClient(app=create_app(api_settings(clean_redis_url))) as client:
        response = await client.options("/api/v1/bots", headers=headers)
        assert "access-control-allow-origin" not in response.headers


def test_api_refuses_to_listen_on_all_interfaces_without_a_token(
    tmp_path: Path, clean_redis_url: str
) -> None:
    proc = BotfleetProcess(
        ["api", "--host", "0.0.0.0", "--port", "0"],
        tmp_path / "api.log",
        {"BOTFLEET_REDIS_URL": clean_redis_url},
    ).start()
    assert proc.proc is not None
    code = proc.proc.wait(timeout=30)
    proc.stop()
    assert code != 0
    assert "refusing to listen on 0.0.0.0 without BOTFLEET_API_TOKEN" in proc.log_text()


def test_api_serves_on_loopback_and_answers_liveness(
    tmp_path: Path, clean_redis_url: str, processes: list[Any]
) -> None:
    from tests.support.redis_server import free_port

    port = free_port()
    proc = BotfleetProcess(
        ["api", "--port", str(port)],
        tmp_path / "api.log",
        {"BOTFLEET_REDIS_URL": clean_redis_url, "BOTFLEET_API_TOKEN": TOKEN},
    ).start()
    processes.append(proc)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    import httpx

    assert httpx.get(f"http://127.0.0.1:{port}/api/v1/bots").status_code == 401
    assert proc.interrupt() == 0
