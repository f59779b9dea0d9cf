"""Log lines carry service and instance, and a secret never reaches the output."""

from __future__ import annotations

import io
import json

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.logging import configure_logging, get_logger
from shared.redaction import redact
from shared.settings import Settings

SECRET = "Zq8VdQm3T6wXyJ2kLp0sRn5uHbGcFaE1"


class _SecretSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="BOTFLEET_TEST_")
    api_secret: SecretStr


def test_json_lines_carry_service_and_instance() -> None:
    out = io.StringIO()
    configure_logging("gateway", "host-1", fmt="json", stream=out)
    get_logger().info("order.filled", bot="b1", qty="0.5")
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["event"] == "order.filled"
    assert (line["service"], line["instance"], line["bot"], line["qty"]) == (
        "gateway",
        "host-1",
        "b1",
        "0.5",
    )


def test_a_loaded_secret_never_reaches_the_log() -> None:
    _SecretSettings(api_secret=SecretStr(SECRET))  # loading registers the value
    out = io.StringIO()
    configure_logging("gateway", "host-1", fmt="json", stream=out)
    log = get_logger()
    log.info("signed", query=f"symbol=BTCUSDT&timestamp=1&note={SECRET}")
    log.info("raw", value=SECRET, nested={"deep": [SECRET]})
    log.error("failed", error=RuntimeError(f"bad key {SECRET}"))
    try:
        raise ValueError(SECRET)
    except ValueError:
        log.exception("boom")
    configure_logging("gateway", "host-1", fmt="console", stream=out)
    get_logger().warning("console", text=SECRET)
    assert SECRET not in out.getvalue()
    assert out.getvalue().count("***") >= 5


def test_secret_names_and_inline_signatures_are_masked() -> None:
    assert redact("x", "api_secret") == "***"
    assert redact({"X-MBX-APIKEY": "abcdef123456"}) == {"X-MBX-APIKEY": "***"}
    assert (
        redact("GET /api/v3/order?symbol=BTCUSDT&signature=c8db56825ae71d6d")
        == "GET /api/v3/order?symbol=BTCUSDT&signature=***"
    )
    assert redact("Authorization: Bearer tok_abcdef0123") == "Authorization: Bearer ***"
