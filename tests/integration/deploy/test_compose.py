"""compose.yaml is a valid Compose file that runs the real botfleet commands with
known settings, and .env.example documents every setting of DESIGN "Configuration".

There is no Docker engine on the machines that run this suite, so the file is checked
against the Compose Specification's JSON schema (tests/fixtures/compose/, see its
SOURCES.md) after the same variable interpolation compose does, with .env.example as
the .env file.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from services.cli import app
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json"
BOTFLEET_SERVICES = ("ingestion", "runner", "gateway", "api")

# The table of DESIGN.md "Configuration" (one row may name two variables).
DESIGN_VARIABLES = (
    "BOTFLEET_REDIS_URL",
    "BOTFLEET_BINANCE_ENV",
    "BOTFLEET_BINANCE_REST_URL",
    "BOTFLEET_BINANCE_WS_URL",
    "BOTFLEET_BINANCE_API_KEY",
    "BOTFLEET_BINANCE_API_SECRET",
    "BOTFLEET_BINANCE_PRIVATE_KEY_FILE",
    "BOTFLEET_TRADING_MODE",
    "BOTFLEET_CONFIRM_PRODUCTION",
    "BOTFLEET_API_TOKEN",
    "BOTFLEET_LOG_FORMAT",
    "BOTFLEET_LOG_LEVEL",
    "BOTFLEET_INSTANCE",
)

_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class InterpolationError(Exception):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
    ``${VAR?error}`` and ``$$`` (compose-spec "Interpolation")."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or value == ""
        if op == ":-":
            return arg if unset_or_empty else str(value)
        if op == "-":
            return arg if value is None else value
        if (op == ":?" and unset_or_empty) or (op == "?" and value is None):
            raise InterpolationError(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(sub, text)


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(n, env) for n in node]
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    return node


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return dict(_walk(raw, env))


def known_settings() -> set[str]:
    """Environment names of every field of every Settings class in the project."""
    for path in sorted((ROOT / "services").glob("*/settings.py")):
        importlib.import_module(f"services.{path.parent.name}.settings")
    names: set[str] = set()
    pending: list[type[Settings]] = [Settings]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            alias = info.validation_alias if isinstance(info.validation_alias, str) else None
            names.add((alias or prefix + field_name).upper())
    return names


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return dotenv(ROOT / ".env.example")


@pytest.fixture(scope="module")
def compose(example_env: dict[str, str]) -> dict[str, Any]:
    return load_compose(example_env)


def test_compose_file_validates_against_the_compose_specification_schema(
    compose: dict[str, Any],
) -> None:
    schema = json.loads(SCHEMA.read_text())
    # The schema names draft 2019-09 ("$schema" with a trailing '#').
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_misspelled_service_key(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["restrat"] = "always"
    assert not jsonschema.Draft201909Validator(schema).is_valid(broken)


def test_compose_refuses_to_start_without_an_exchange_or_an_api_token(
    example_env: dict[str, str],
) -> None:
    for missing in ("BOTFLEET_BINANCE_ENV", "BOTFLEET_API_TOKEN"):
        env = {k: v for k, v in example_env.items() if k != missing}
        with pytest.raises(InterpolationError, match=missing):
            load_compose(env)


def _botfleet_commands(compose: dict[str, Any]) -> list[tuple[str, list[str]]]:
    found = []
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("botfleet"):
            found.append((name, list(service["command"])))
        test = service.get("healthcheck", {}).get("test", [])
        if len(test) > 1 and test[1] == "botfleet":
            found.append((f"{name} healthcheck", test[2:]))
    return found


def test_every_service_command_and_healthcheck_is_a_real_botfleet_command(
    compose: dict[str, Any],
) -> None:
    runner = CliRunner()
    commands = _botfleet_commands(compose)
    assert {c[0] for c in commands} >= {*BOTFLEET_SERVICES, "exchange-sim"}
    for where, argv in commands:
        # Sub-commands and their flags: `--help` parses neither values nor environment.
        words = [a for a in argv if not a.startswith("-")]
        result = runner.invoke(app, [*words[:1], "--help"])
        assert result.exit_code == 0, f"{where}: botfleet {words[0]} --help -> {result.output}"
        flags = [a.split("=", 1)[0] for a in argv if a.startswith("--")]
        for flag in flags:
            assert flag in result.output, f"{where}: botfleet {words[0]} has no {flag}"


def test_every_botfleet_variable_compose_sets_is_a_known_setting(compose: dict[str, Any]) -> None:
    known = known_settings()
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}) or {}:
            if variable.startswith("BOTFLEET_"):
                assert variable in known, f"{name} sets {variable}, which no Settings reads"


def test_env_example_documents_every_design_variable_and_only_known_settings() -> None:
    text = (ROOT / ".env.example").read_text()
    mentioned = set(re.findall(r"\b(BOTFLEET_[A-Z0-9_]+)=", text))
    missing = [v for v in DESIGN_VARIABLES if v not in mentioned]
    assert not missing, f".env.example does not explain {missing}"
    unknown = sorted(mentioned - known_settings())
    assert not unknown, f".env.example names variables no Settings reads: {unknown}"


def test_simulator_runs_under_a_profile_that_env_example_turns_on(
    compose: dict[str, Any], example_env: dict[str, str]
) -> None:
    services = compose["services"]
    assert services["exchange-sim"]["profiles"] == ["sim"]
    assert "sim" in example_env["COMPOSE_PROFILES"].split(",")
    assert example_env["BOTFLEET_BINANCE_ENV"] == "sim"
    for name in ("redis", *BOTFLEET_SERVICES):
        assert "profiles" not in services[name], f"{name} must run in every profile"


def test_every_service_has_a_healthcheck_a_restart_policy_and_stdout_logs(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name
        assert service.get("logging", {}).get("driver", "json-file") == "json-file", name
    for name in BOTFLEET_SERVICES:
        test = compose["services"][name]["healthcheck"]["test"]
        assert test == ["CMD", "botfleet", "health", "--service", name]


def test_redis_keeps_its_data_in_aof_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume = redis["volumes"][0].split(":")
    assert volume == ["redis-data", "/data"]
    assert "redis-data" in compose["volumes"]
    for name in BOTFLEET_SERVICES:
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_two_runner_replicas_and_the_api_published_on_port_8000(compose: dict[str, Any]) -> None:
    assert compose["services"]["runner"]["deploy"]["replicas"] == 2
    ports = compose["services"]["api"]["ports"]
    assert any(str(p).endswith(":8000") for p in ports)


def test_only_the_gateway_receives_exchange_credentials(compose: dict[str, Any]) -> None:
    for name in ("ingestion", "runner", "api"):
        env = compose["services"][name]["environment"]
        assert not any("API_KEY" in k or "API_SECRET" in k for k in env), name
    gateway = compose["services"]["gateway"]["environment"]
    assert "BOTFLEET_BINANCE_API_SECRET" in gateway


def test_dockerfile_builds_one_image_from_python_311_slim_with_botfleet_entrypoint() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert 'ENTRYPOINT ["botfleet"]' in text
    assert re.search(r"^USER (?!root)", text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored
