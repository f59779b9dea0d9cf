"""The API's pure parts: exposure rule, ids, lifecycle rules, summary and health."""

from __future__ import annotations

import pytest

from services.api.auth import token_matches
from services.api.errors import Conflict
from services.api.fleet import assess_health, summarize
from services.api.ids import is_id, new_id
from services.api.lifecycle import BotState, check_delete, check_update, settled
from services.api.models import Bot
from services.api.settings import ApiSettings, InsecureBindError, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "api.example.com"])
def test_reachable_address_without_token_is_refused(host: str) -> None:
    with pytest.raises(InsecureBindError, match="BOTFLEET_API_TOKEN"):
        ApiSettings(api_host=host).check_exposure()
    ApiSettings(api_host=host, api_token="x" * 16).check_exposure()


def test_short_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        ApiSettings(api_token="short")


def test_ids_sort_by_time_and_fit_hash_tags() -> None:
    a, b = new_id(1_000), new_id(2_000)
    assert is_id(a) and is_id(b) and a < b and len(a) == 26
    assert not any(c in a for c in "{}:")


def test_bearer_token_must_match_exactly() -> None:
    assert token_matches("Bearer abc", "abc") and token_matches("bearer abc", "abc")
    assert not token_matches("Bearer abcd", "abc") and not token_matches("abc", "abc")
    assert not token_matches(None, "abc")


def test_config_change_and_delete_need_a_bot_at_rest_with_no_lease() -> None:
    check_update(BotState("stopped", "stopped", False))
    check_delete(BotState("stopped", "error", False))
    for state in (
        BotState("running", "running", True),
        BotState("stopped", "stopping", True),
        BotState("stopped", "stopped", True),
        BotState("running", "stopped", False),
    ):
        with pytest.raises(Conflict):
            check_delete(state)


def test_wait_settles_on_the_status_the_command_leads_to() -> None:
    assert settled("start", "running") and not settled("start", "starting")
    assert settled("stop", "stopped") and not settled("stop", "stopping")


def _bot(status: str, stats: dict[str, str], position: dict[str, str]) -> Bot:
    return Bot(id="X", name="n", symbol="BTCUSDT", interval="1m", strategy="rsi", config={},
               desired="stopped", status=status, stats=stats, position=position)  # fmt: skip


def test_summary_counts_statuses_and_values_exposure_at_last_price() -> None:
    s = summarize(
        [_bot("running", {"equity": "10", "fees": "0.1"}, {"qty": "2"}), _bot("stopped", {}, {})],
        {"BTCUSDT": "3"},
        "incident",
    )
    assert s.by_status == {"running": 1, "stopped": 1}
    assert (s.exposure, s.open_positions, s.halted, s.halt_reason) == ("6", 1, True, "incident")


def test_health_marks_old_heartbeats_dead_and_missing_services() -> None:
    health = assess_health(
        now=100_000,
        ping_ms=0.2,
        beats=[
            {"service": "runner", "instance": "a", "ts": "99000"},
            {"service": "gateway", "instance": "g", "ts": "1"},
        ],
        last_update={"BTCUSDT": "99000"},
        bots=[],
        halt=None,
    )
    assert health.services["runner"][0].alive and not health.services["gateway"][0].alive
    assert health.missing == ["ingestion", "gateway"] and health.status == "degraded"
    assert health.stale_symbols == {}


def test_stale_symbols_are_the_runners_verdict_aged_on_the_exchange_clock() -> None:
    """Stale is what the runners' gate decided (their bots' ``stale``), not a guess of the
    API's: ETHUSDT's old update is not reported while no runner holds it stale. Ages are
    on the exchange's clock (a simulator running ahead of wall time)."""
    health = assess_health(
        now=100_000,
        exchange_now=10_000_000,
        ping_ms=0.1,
        beats=[{"service": "runner", "instance": "a", "ts": "99500"}],
        last_update={"BTCUSDT": str(10_000_000 - 120_000), "ETHUSDT": str(10_000_000 - 999_000)},
        bots=[("b1", {"stale": "BTCUSDT", "status_reason": "stale data for BTCUSDT"})],
        halt=None,
    )
    assert health.stale_symbols == {"BTCUSDT": 120_000}
    assert health.status == "degraded"
    assert health.services["runner"][0].alive


def test_a_live_process_whose_main_loop_stalled_is_unhealthy() -> None:
    """The heartbeat task beats on while the main loop is stuck: ``loop_at`` shows it."""
    beats = [
        {"service": "runner", "instance": "a", "ts": "99900", "loop_at": "99800"},
        {"service": "runner", "instance": "b", "ts": "99900", "loop_at": "80000"},
    ]
    health = assess_health(
        now=100_000, ping_ms=0.1, beats=beats, last_update={}, bots=[], halt=None
    )
    a, b = health.services["runner"]
    assert a.healthy and a.loop_age_ms == 200
    assert b.alive and not b.healthy and b.loop_stalled
    assert "main loop has not progressed for 20000 ms" in b.reason
    assert health.status == "degraded" and "runner" not in health.missing


@pytest.mark.parametrize(
    "token", [" " * 20, "\t" * 16, "good-token-0123456789 ", "two words here!!"]
)
def test_tokens_with_white_space_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="white space"):
        ApiSettings(api_token=token)
