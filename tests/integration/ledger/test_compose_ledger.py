"""compose.yaml runs the ledger on PostgreSQL: a named volume, a healthcheck, the ledger
waiting for a healthy database, the API reading the same one, no credentials of the
exchange anywhere near them."""

from __future__ import annotations

from tests.integration.deploy.test_compose import ROOT, dotenv, load_compose


def test_postgres_has_a_volume_a_healthcheck_and_the_ledger_waits_for_it() -> None:
    compose = load_compose(dotenv(ROOT / ".env.example"))
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert "postgres-data" in compose["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "ports" not in postgres  # the database stays inside the compose network

    ledger = services["ledger"]
    assert ledger["command"] == ["ledger"]
    assert ledger["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert ledger["depends_on"]["redis"]["condition"] == "service_healthy"
    assert ledger["healthcheck"]["test"] == ["CMD", "botfleet", "health", "--service", "ledger"]
    url = ledger["environment"]["BOTFLEET_LEDGER_DATABASE_URL"]
    assert url.startswith("postgresql://") and "@postgres:5432/" in url
    assert services["api"]["environment"]["BOTFLEET_LEDGER_DATABASE_URL"] == url
    assert "postgres" not in services["api"].get("depends_on", {})  # the API never waits
    for name in ("ledger", "postgres"):
        env = services[name].get("environment", {})
        assert not any("BINANCE_API" in k for k in env), name
