"""Schema-driven fuzzing of the history routes over a real ledger (SQLite with rows, a
real ``botfleet api`` process): whatever the query, no answer is a 5xx."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.integration.api.conftest import AUTH, TOKEN
from tests.integration.ledger.test_cli import seed
from tests.support.processes import BotfleetProcess
from tests.support.redis_server import free_port

ROUTES = ("/api/v1/trades", "/api/v1/orders/history", "/api/v1/round-trips", "/api/v1/equity")


def test_fuzzed_history_queries_never_get_a_5xx(
    tmp_path: Path, clean_redis_url: str, processes: list[Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    asyncio.run(seed(url))
    port = free_port()
    proc = BotfleetProcess(
        ["api", "--port", str(port)],
        tmp_path / "api.log",
        {
            "BOTFLEET_REDIS_URL": clean_redis_url,
            "BOTFLEET_API_TOKEN": TOKEN,
            "BOTFLEET_LEDGER_DATABASE_URL": url,
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
        if operation.path not in ROUTES:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
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
                    f"{case.method} {case.formatted_path} {case.query} -> "
                    f"{response.status_code}: {response.text[:200]}"
                )

        check()
    assert cases >= 100, cases
    assert not failures, "\n".join(failures[:20])
    assert "api.unhandled" not in proc.log_text(), proc.log_text()[-3000:]
