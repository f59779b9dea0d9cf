"""The dev fleet's plan: what starts, in which order, with which command line and
environment (pure, no process started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.dev.plan import (
    REDIS,
    SERVICES,
    DevOptions,
    PlanError,
    Readiness,
    Secrets,
    build_plan,
    child_env,
    parse_services,
    redis_cli_command,
    start_phases,
    stop_phases,
)

SECRETS = Secrets(api_token="tok" * 8, sim_api_key="simkey" * 4, sim_api_secret="simsecret" * 4)


def options(tmp: Path = Path("/data"), **kw: object) -> DevOptions:
    return DevOptions(data_dir=tmp, **kw)  # type: ignore[arg-type]


def by_name(**kw: object) -> dict[str, object]:
    return {s.name: s for s in build_plan(options(**kw), SECRETS, python="py")}


def test_full_plan_starts_redis_sim_services_and_two_runners_in_order() -> None:
    names = [s.name for s in build_plan(options(), SECRETS, python="py")]
    assert names == [
        REDIS, "exchange-sim", "ingestion", "gateway", "ledger", "backtest-worker",
        "runner-1", "runner-2", "api",
    ]  # fmt: skip


def test_runner_count_flag_sets_the_number_of_runner_processes() -> None:
    names = [s.name for s in build_plan(options(runners=4), SECRETS, python="py")]
    assert [n for n in names if n.startswith("runner")] == [f"runner-{i}" for i in range(1, 5)]
    with pytest.raises(PlanError):
        build_plan(options(runners=-1), SECRETS)


def test_external_redis_url_starts_no_redis_server_and_is_given_to_every_service() -> None:
    url = "redis://10.0.0.5:6379/2"
    specs = build_plan(options(external_redis_url=url), SECRETS, python="py")
    assert REDIS not in [s.name for s in specs]
    for spec in specs:
        if spec.service != "exchange-sim":
            assert spec.env["BOTFLEET_REDIS_URL"] == url


def test_private_redis_runs_with_aof_in_the_data_dir_on_loopback() -> None:
    spec = by_name(redis_port=7001)[REDIS]
    argv = list(spec.argv)  # type: ignore[attr-defined]
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert argv[argv.index("--dir") + 1] == "/data/redis"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "7001"
    assert spec.ready is Readiness.REDIS_PING  # type: ignore[attr-defined]


def test_services_trade_live_against_the_simulator() -> None:
    plan = by_name(sim_port=9555, sim_speed=120.0)
    for name in ("ingestion", "gateway", "runner-1", "api"):
        env = plan[name].env  # type: ignore[attr-defined]
        assert env["BOTFLEET_TRADING_MODE"] == "live"
        assert env["BOTFLEET_BINANCE_ENV"] == "sim"
        assert env["BOTFLEET_BINANCE_REST_URL"] == "http://127.0.0.1:9555"
        assert env["BOTFLEET_BINANCE_WS_URL"] == "ws://127.0.0.1:9555"
        assert env["BOTFLEET_INSTANCE"] == name
    sim = list(plan["exchange-sim"].argv)  # type: ignore[attr-defined]
    assert sim[:4] == ["py", "-m", "services.dev.launch_sim", "exchange-sim"]
    assert sim[sim.index("--speed") + 1] == "120"
    assert sim[sim.index("--port") + 1] == "9555"


def test_only_the_gateway_holds_the_exchange_key_and_only_the_api_its_token() -> None:
    plan = build_plan(options(), SECRETS, python="py")
    for spec in plan:
        has_key = "BOTFLEET_BINANCE_API_SECRET" in spec.env
        assert has_key == (spec.service == "gateway"), spec.name
        assert ("BOTFLEET_API_TOKEN" in spec.env) == (spec.service == "api"), spec.name
    gateway = next(s for s in plan if s.service == "gateway")
    assert gateway.env["BOTFLEET_GATEWAY_USE_SERVER_TIME"] == "false"  # sped-up sim clock
    assert gateway.env["BOTFLEET_BINANCE_API_KEY"] == SECRETS.sim_api_key
    assert gateway.env["BOTFLEET_BINANCE_API_SECRET"] == SECRETS.sim_api_secret


def test_no_secret_appears_on_any_command_line_or_in_a_spec_repr() -> None:
    for spec in build_plan(options(), SECRETS, python="py"):
        text = " ".join(spec.argv) + repr(spec)
        for secret in (SECRETS.api_token, SECRETS.sim_api_key, SECRETS.sim_api_secret):
            assert secret not in text, spec.name
    assert SECRETS.api_token not in repr(SECRETS)


def test_inherited_exchange_credentials_never_reach_a_child() -> None:
    inherited = {
        "PATH": "/bin",
        "BOTFLEET_BINANCE_API_KEY": "real-production-key",
        "BOTFLEET_BINANCE_API_SECRET": "real-production-secret",
        "BOTFLEET_BINANCE_ENV": "production",
        "BOTFLEET_CONFIRM_PRODUCTION": "yes",
        "BOTFLEET_RUNNER_CAPACITY": "50",
    }
    for spec in build_plan(options(), SECRETS, python="py"):
        env = child_env(inherited, spec)
        assert "real-production-key" not in env.values()
        assert "real-production-secret" not in env.values()
        assert "BOTFLEET_CONFIRM_PRODUCTION" not in env
        assert env["PATH"] == "/bin"
        assert env["BOTFLEET_RUNNER_CAPACITY"] == "50"  # service tuning passes through
        if spec.service not in (REDIS, "exchange-sim"):
            assert env["BOTFLEET_BINANCE_ENV"] == "sim"


def test_children_log_in_console_format_unless_the_operator_chose_one() -> None:
    spec = by_name()["ingestion"]
    assert child_env({}, spec)["BOTFLEET_LOG_FORMAT"] == "console"  # type: ignore[arg-type]
    assert child_env({"BOTFLEET_LOG_FORMAT": "json"}, spec)["BOTFLEET_LOG_FORMAT"] == "json"  # type: ignore[arg-type]


def test_start_phases_put_redis_then_the_exchange_before_the_services() -> None:
    phases = [[s.name for s in p] for p in start_phases(build_plan(options(), SECRETS))]
    assert phases == [
        [REDIS],
        ["exchange-sim"],
        ["ingestion", "gateway", "ledger", "backtest-worker"],
        ["runner-1", "runner-2", "api"],
    ]


def test_stop_order_stops_runners_before_the_gateway_and_redis_last() -> None:
    groups = [[s.name for s in g] for g in stop_phases(build_plan(options(), SECRETS))]
    assert groups == [
        ["api"],
        ["backtest-worker"],
        ["runner-1", "runner-2"],
        ["gateway"],
        ["ledger"],
        ["ingestion"],
        ["exchange-sim"],
        [REDIS],
    ]


def test_services_flag_picks_a_subset_in_start_order() -> None:
    installed = set(SERVICES)
    assert parse_services("api,exchange-sim", installed) == ("exchange-sim", "api")
    assert parse_services("all", installed) == SERVICES
    assert parse_services(None, {"runner", "api"}) == ("runner", "api")
    with pytest.raises(PlanError, match="unknown"):
        parse_services("runner,bogus", installed)
    with pytest.raises(PlanError, match="not installed"):
        parse_services("gateway", {"runner"})


def test_subset_plan_contains_only_the_chosen_services() -> None:
    names = [s.name for s in build_plan(options(services=("api",)), SECRETS)]
    assert names == [REDIS, "api"]


def test_api_listens_where_asked_and_is_probed_on_loopback() -> None:
    api = by_name(api_host="0.0.0.0", api_port=8123)["api"]
    assert api.env["BOTFLEET_API_HOST"] == "0.0.0.0"  # type: ignore[attr-defined]
    assert api.env["BOTFLEET_API_PORT"] == "8123"  # type: ignore[attr-defined]
    assert api.ready_target == "127.0.0.1:8123"  # type: ignore[attr-defined]
    assert options(api_host="0.0.0.0", api_port=8123).api_url == "http://127.0.0.1:8123"


def test_redis_cli_command_opens_the_same_database_without_the_password() -> None:
    assert redis_cli_command("redis://127.0.0.1:6390/0") == "redis-cli -h 127.0.0.1 -p 6390"
    assert redis_cli_command("redis://h:1/3") == "redis-cli -h h -p 1 -n 3"
    cmd = redis_cli_command("rediss://u:hunter2secret@h:6380/0")
    assert "hunter2secret" not in cmd
    assert cmd.endswith("--tls --askpass")
    assert redis_cli_command("unix:///tmp/r.sock") == "redis-cli -s /tmp/r.sock"


def test_busy_ports_are_named_with_the_flag_that_moves_them() -> None:
    from services.dev.plan import ports_in_use

    taken = {8000}
    busy = ports_in_use(options(), lambda host, port: port not in taken)
    assert busy == ["API 127.0.0.1:8000 (--api-port)"]
    assert (
        ports_in_use(options(external_redis_url="redis://x:1/0", services=()), lambda h, p: False)
        == []
    )


def test_the_ledger_and_the_api_share_one_database_sqlite_in_the_data_dir_by_default() -> None:
    plan = by_name()
    for name in ("ledger", "api"):
        env = plan[name].env  # type: ignore[attr-defined]
        assert env["BOTFLEET_LEDGER_DATABASE_URL"] == "sqlite:////data/ledger.db"
    chosen = by_name(ledger_database_url="postgresql://u@db/ledger")
    assert chosen["ledger"].env["BOTFLEET_LEDGER_DATABASE_URL"] == "postgresql://u@db/ledger"  # type: ignore[attr-defined]
    assert "BOTFLEET_BINANCE_API_SECRET" not in plan["ledger"].env  # type: ignore[attr-defined]
