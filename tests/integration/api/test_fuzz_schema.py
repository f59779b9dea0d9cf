"""A schema-driven fuzz run: schemathesis generates requests from the API's own OpenAPI
schema against a real ``botfleet api`` process, and no answer may be a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from shared import keys
from tests.integration.api.conftest import AUTH, TOKEN, rules
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port

SKIP = {("GET", "/api/v1/feed")}  # an endless event stream, covered by its own test
EXAMPLES_PER_OPERATION = 12


def test_fuzzed_requests_from_the_openapi_schema_never_get_a_5xx(
    tmp_path: Path, clean_redis_url: str, processes: list[Any]
) -> None:
    client = sync_redis.Redis.from_url(clean_redis_url)
    client.hset(
        keys.EXCHANGE_SYMBOLS,
        mapping={"BTCUSDT": rules("BTCUSDT"), "LUNAUSDT": rules("LUNAUSDT", "BREAK")},
    )
    client.close()
    port = free_port()
    proc = BotfleetProcess(
        ["api", "--port", str(port)],
        tmp_path / "api.log",
        {
            "BOTFLEET_REDIS_URL": clean_redis_url,
            "BOTFLEET_API_TOKEN": TOKEN,
            "BOTFLEET_API_MAX_WAIT_S": "0.5",
        },
    ).start()
    processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    proc.wait_http(base + "/healthz")
    schema = schemathesis.from_uri(
        base + "/schema/openapi.json", base_url=base, force_schema_version="30"
    )
    failures: list[str] = []
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            nonlocal cases
            cases += 1
            response = case.call(headers=AUTH, timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        check()
    assert cases >= 100, cases
    assert not failures, "\n".join(failures[:20])
    if "api.unhandled" in proc.log_text():
        pytest.fail("the API logged an unhandled error:\n" + proc.log_text()[-3000:])
