"""BotConfig: what a bot may be configured with, and errors that name the field at fault."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from shared.strategies.config import (
    BotConfig,
    FixedQuoteSizing,
    Interval,
    PercentEquitySizing,
    RiskSizing,
)
from shared.strategies.exits import ExitPlan


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "rsi btc",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "strategy": "rsi",
        "params": {"period": 10},
        "quote_allocation": "1000",
    }
    base.update(overrides)
    return base


def error_locs(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as err:
        BotConfig.model_validate(data)
    return [e["loc"] for e in err.value.errors()]


def test_a_minimal_config_gets_defaults_and_filled_in_params() -> None:
    cfg = BotConfig.model_validate(config(symbol="btcusdt"))
    assert cfg.symbol == "BTCUSDT"
    assert cfg.params == {
        "period": 10,
        "oversold": 30.0,
        "overbought": 70.0,
        "sell_on_overbought": True,
    }
    assert cfg.sizing == PercentEquitySizing(percent=Decimal(100))
    assert cfg.close_on_stop is True
    assert cfg.exit_plan() == ExitPlan()
    assert cfg.quote_allocation == Decimal("1000")


def test_config_round_trips_through_json_with_decimals_as_strings() -> None:
    cfg = BotConfig.model_validate(
        config(stop_loss_pct="2.5", sizing={"mode": "risk", "risk_pct": "1"}, trailing_stop_pct=3)
    )
    text = cfg.model_dump_json()
    assert json.loads(text)["stop_loss_pct"] == "2.5"
    assert BotConfig.model_validate_json(text) == cfg
    assert isinstance(cfg.sizing, RiskSizing)


def test_every_binance_interval_and_only_those() -> None:
    intervals = pytest.importorskip("shared.binance.intervals").INTERVALS
    assert get_args(Interval) == intervals
    for interval in intervals:
        assert BotConfig.model_validate(config(interval=interval)).interval == interval
    assert error_locs(config(interval="2m")) == [("interval",)]
    assert error_locs(config(interval="1H")) == [("interval",)]


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"name": "  "}, ("name",)),
        ({"symbol": "BTC/USDT"}, ("symbol",)),
        ({"strategy": "macd"}, ("strategy",)),
        ({"params": {"period": 1}}, ("params",)),
        ({"params": {"oops": 1}}, ("params",)),
        ({"quote_allocation": "0"}, ("quote_allocation",)),
        ({"quote_allocation": "NaN"}, ("quote_allocation",)),
        ({"stop_loss_pct": 100}, ("stop_loss_pct",)),
        ({"take_profit_pct": 0}, ("take_profit_pct",)),
        ({"trailing_stop_pct": -1}, ("trailing_stop_pct",)),
        ({"cooldown_seconds": -1}, ("cooldown_seconds",)),
        ({"sizing": {"mode": "risk", "risk_pct": 1}}, ("sizing",)),
        ({"sizing": {"mode": "fixed_quote", "quote_amount": 2000}}, ("sizing",)),
        ({"sizing": {"mode": "all_in"}}, ("sizing",)),
        ({"leverage": 3}, ("leverage",)),
    ],
)
def test_errors_name_the_offending_field(overrides: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert error_locs(config(**overrides))[0][: len(loc)] == loc


def test_param_errors_say_which_parameter() -> None:
    with pytest.raises(ValidationError) as err:
        BotConfig.model_validate(config(params={"period": 1}))
    assert "period" in err.value.errors()[0]["msg"]


def test_bots_with_equal_settings_share_an_evaluation_key() -> None:
    a = BotConfig.model_validate(config(params={}))
    b = BotConfig.model_validate(config(name="other", params={"period": 14}, quote_allocation=5))
    assert a.evaluation_key() == b.evaluation_key()
    assert a.evaluation_key()[:2] == ("BTCUSDT", "1m")
    assert a.build_strategy().params == a.strategy_params()


def test_json_schema_is_servable() -> None:
    schema = BotConfig.model_json_schema()
    assert set(schema["required"]) == {"name", "symbol", "interval", "strategy", "quote_allocation"}
    assert "1M" in schema["properties"]["interval"]["enum"]
    assert schema["properties"]["sizing"]["discriminator"]["propertyName"] == "mode"
    json.dumps(schema)


def test_fixed_sizing_within_allocation_is_fine() -> None:
    cfg = BotConfig.model_validate(config(sizing={"mode": "fixed_quote", "quote_amount": "50"}))
    assert cfg.sizing == FixedQuoteSizing(quote_amount=Decimal(50))


def test_a_bot_whose_warmup_exceeds_what_the_fleet_serves_is_refused() -> None:
    from shared.strategies.config import WARMUP_CANDLES_MAX, BotConfig

    base = {"name": "b", "symbol": "BTCUSDT", "interval": "1h", "quote_allocation": "100"}
    ok = BotConfig.model_validate({**base, "strategy": "rsi", "params": {"period": 14}})
    assert ok.warmup_candles() <= WARMUP_CANDLES_MAX
    # RSI 200 and EMA 50/200 are served (ingestion backfills their warm-up)
    assert (
        BotConfig.model_validate(
            {**base, "strategy": "rsi", "params": {"period": 200}}
        ).warmup_candles()
        == 4795
    )
    BotConfig.model_validate(
        {**base, "strategy": "ema_cross", "params": {"fast_period": 50, "slow_period": 200}}
    )
    with pytest.raises(ValidationError, match=r"needs 12003 closed candles of warm-up"):
        BotConfig.model_validate({**base, "strategy": "rsi", "params": {"period": 500}})
    with pytest.raises(ValidationError, match=r"more than the 10000 the fleet serves"):
        BotConfig.model_validate(
            {**base, "strategy": "ema_cross", "params": {"fast_period": 50, "slow_period": 1000}}
        )
    default = BotConfig.model_validate({**base, "strategy": "ema_stochrsi"})
    assert default.warmup_candles() == 627
