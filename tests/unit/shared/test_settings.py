"""Settings come from BOTFLEET_* variables; bad values are named at start-up."""

from __future__ import annotations

import pytest

from shared.settings import BinanceEnv, Settings, SettingsError, load_settings


def test_defaults_match_design(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOTFLEET_REDIS_URL", "BOTFLEET_BINANCE_ENV", "BOTFLEET_INSTANCE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(Settings)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.binance_env is BinanceEnv.TESTNET
    assert settings.rest_url == "https://testnet.binance.vision"
    assert settings.ws_url == "wss://stream.testnet.binance.vision"
    assert settings.instance


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTFLEET_BINANCE_ENV", "sim")
    monkeypatch.setenv("BOTFLEET_BINANCE_REST_URL", "http://127.0.0.1:9999/")
    settings = load_settings(Settings, instance="node-7", log_level=None)
    assert settings.binance_env is BinanceEnv.SIM
    assert settings.rest_url == "http://127.0.0.1:9999"
    assert settings.ws_url == "ws://127.0.0.1:9100"
    assert settings.instance == "node-7"


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTFLEET_BINANCE_ENV", "mainnet")
    monkeypatch.setenv("BOTFLEET_REDIS_URL", "http://localhost")
    with pytest.raises(SettingsError) as info:
        load_settings(Settings)
    text = str(info.value)
    assert "BOTFLEET_BINANCE_ENV" in text
    assert "BOTFLEET_REDIS_URL" in text
