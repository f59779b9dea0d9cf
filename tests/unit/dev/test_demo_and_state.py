"""The demo bots are valid bot configs on three symbols and strategies; the data
directory keeps the token and credentials across restarts, privately."""

from __future__ import annotations

import stat
from pathlib import Path

from services.dev import state
from services.dev.demo import DEMO_BOTS, demo_symbols, missing_demo_bots
from shared.strategies.config import BotConfig


def test_demo_bots_are_valid_configs_on_different_symbols_and_strategies() -> None:
    configs = [BotConfig.model_validate(b) for b in DEMO_BOTS]
    assert {c.strategy for c in configs} == {"rsi", "ema_cross", "bollinger"}
    assert len({c.symbol for c in configs}) == 3
    assert demo_symbols() == tuple(c.symbol for c in configs)
    for c in configs:
        assert c.take_profit_pct is not None and c.stop_loss_pct is not None  # round trips close


def test_only_missing_demo_bots_are_created_again() -> None:
    assert len(missing_demo_bots([])) == 3
    assert [b["name"] for b in missing_demo_bots(["demo-rsi-btc", "mine"])] == [
        "demo-ema-eth",
        "demo-bollinger-bnb",
    ]
    assert missing_demo_bots(b["name"] for b in DEMO_BOTS) == []


def test_token_and_sim_credentials_persist_across_restarts_with_private_mode(
    tmp_path: Path,
) -> None:
    state.prepare(tmp_path)
    first = state.load_secrets(tmp_path)
    second = state.load_secrets(tmp_path)
    assert first == second
    assert len(first.api_token) >= 16
    for name in ("api-token", "sim-credentials"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700


def test_a_token_from_the_environment_wins_over_the_stored_one(tmp_path: Path) -> None:
    state.prepare(tmp_path)
    state.load_secrets(tmp_path)
    given = "x" * 20
    assert state.load_secrets(tmp_path, given).api_token == given


def test_resume_list_roundtrips_and_tolerates_a_damaged_file(tmp_path: Path) -> None:
    state.prepare(tmp_path)
    assert state.read_resume(tmp_path) == []
    state.write_resume(tmp_path, ["a", "b"])
    assert state.read_resume(tmp_path) == ["a", "b"]
    (tmp_path / "resume.json").write_text("{not json")
    assert state.read_resume(tmp_path) == []
