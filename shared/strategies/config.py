"""A bot's configuration: what the API validates and stores as ``bot:{id}`` ``config``.

Long only (Binance Spot). Every validation error is reported on the field at fault
(``loc``), including strategy parameters (``params``) and cross-field rules (``sizing``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from shared.binance.intervals import max_interval_ms
from shared.strategies.base import StrategyParams, TradingStrategy
from shared.strategies.exits import ExitPlan
from shared.strategies.registry import get_strategy_class, strategy_names

# Binance kline intervals (Spot API reference, "Kline/Candlestick data", 2024). The same
# list lives in shared.binance.intervals.INTERVALS; a test keeps the two equal.
Interval = Literal[
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
    "1M",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)

# The most closed candles of warm-up a bot may declare (a fleet-wide bound, docs/
# strategies.md "Warm-up"). Each bot's declaration is recorded per series
# (keys.MARKET_WARMUP) when a runner starts it; ingestion then backfills that deep over
# REST (pages of 1000, inside the weight budget) and keeps at least that many candles in
# the series' list, and the runner seeds the bot from it, waiting while the list is not
# deep enough. 10,000 covers Wilder periods up to about 430 (RSI 200: 4,795) and EMA
# periods up to about 800 (EMA 200: 2,503); a bot needing more is refused at creation,
# so that no bot decides on a history too short to match an uninterrupted run.
WARMUP_CANDLES_MAX = 10_000


class FixedQuoteSizing(BaseModel):
    """Spend a fixed quote amount on each entry (capped by what the bot has)."""

    model_config = _FROZEN
    mode: Literal["fixed_quote"] = "fixed_quote"
    quote_amount: Decimal = Field(gt=0, description="quote asset spent per entry")


class PercentEquitySizing(BaseModel):
    """Spend a percentage of the bot's equity on each entry."""

    model_config = _FROZEN
    mode: Literal["percent_equity"] = "percent_equity"
    percent: Decimal = Field(gt=0, le=100, description="percent of bot equity per entry")


class RiskSizing(BaseModel):
    """Size the entry so that hitting the stop-loss loses ``risk_pct`` of the bot's equity."""

    model_config = _FROZEN
    mode: Literal["risk"] = "risk"
    risk_pct: Decimal = Field(gt=0, le=100, description="percent of bot equity lost at the stop")


Sizing = Annotated[FixedQuoteSizing | PercentEquitySizing | RiskSizing, Field(discriminator="mode")]


def _describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "params"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class BotConfig(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1, max_length=100, description="label shown to people")
    symbol: str = Field(
        pattern=r"^[A-Z0-9]{2,20}$", description="Binance Spot symbol, e.g. BTCUSDT"
    )
    interval: Interval = Field(description="kline interval the strategy runs on")
    strategy: str = Field(description="strategy name (see the strategies endpoint)")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="strategy parameters; validated against the strategy's schema, defaults filled in",
    )
    quote_allocation: Decimal = Field(gt=0, description="quote asset the bot may trade with")
    stop_loss_pct: Decimal | None = Field(
        None, gt=0, lt=100, description="stop-loss below entry, percent"
    )
    take_profit_pct: Decimal | None = Field(
        None, gt=0, lt=1000, description="take-profit above entry, percent"
    )
    trailing_stop_pct: Decimal | None = Field(
        None, gt=0, lt=100, description="trailing stop below the highest price since entry, percent"
    )
    stop_loss_atr: Decimal | None = Field(
        None,
        gt=0,
        le=100,
        description="stop-loss this many ATRs (the strategy's atr_period) below entry",
    )
    take_profit_atr: Decimal | None = Field(
        None, gt=0, le=1000, description="take-profit this many ATRs above entry"
    )
    sizing: Sizing = Field(
        default_factory=lambda: PercentEquitySizing(percent=Decimal(100)),
        description="how much to buy on an entry",
    )
    cooldown_seconds: int = Field(
        0, ge=0, le=30 * 86_400, description="no new entry this long after an exit"
    )
    cooldown_candles: int = Field(
        0, ge=0, le=10_000, description="no new entry for this many closed candles after an exit"
    )
    close_on_stop: bool = Field(True, description="sell the open position when the bot is stopped")

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper_symbol(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in strategy_names():
            raise ValueError(f"unknown strategy {value!r}; known: {', '.join(strategy_names())}")
        return value

    @field_validator("params")
    @classmethod
    def _valid_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("strategy")
        if name is None:  # the strategy itself is invalid and reported
            return value
        cls_ = get_strategy_class(name)
        try:
            params = cls_.params_model.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"invalid {name} parameters: {_describe_errors(exc)}") from None
        strategy = cls_(params)
        own = info.data.get("interval")
        needs = {"": strategy.warmup_candles, **strategy.informative}
        for series, warmup in needs.items():
            where = f" of its {series} series" if series else ""
            if warmup > WARMUP_CANDLES_MAX:
                raise ValueError(
                    f"{name} with these parameters needs {warmup} closed candles{where} of "
                    f"warm-up to decide as an uninterrupted bot would, more than the "
                    f"{WARMUP_CANDLES_MAX} the fleet serves; use shorter periods"
                )
            if series and own is not None and max_interval_ms(series) <= max_interval_ms(own):
                raise ValueError(
                    f"{name} reads a {series} series besides the bot's own {own}: it must "
                    f"be a longer interval"
                )
        return params.model_dump(mode="json")

    @field_validator("sizing")
    @classmethod
    def _sizing_fits(
        cls, value: FixedQuoteSizing | PercentEquitySizing | RiskSizing, info: ValidationInfo
    ) -> FixedQuoteSizing | PercentEquitySizing | RiskSizing:
        allocation = info.data.get("quote_allocation")
        if (
            isinstance(value, FixedQuoteSizing)
            and allocation is not None
            and value.quote_amount > allocation
        ):
            raise ValueError(
                f"quote_amount {value.quote_amount} exceeds quote_allocation {allocation}"
            )
        if isinstance(value, RiskSizing) and info.data.get("stop_loss_pct") is None:
            raise ValueError("risk sizing needs stop_loss_pct (the stop distance sets the size)")
        return value

    def strategy_params(self) -> StrategyParams:
        return get_strategy_class(self.strategy).params_model.model_validate(self.params)

    def build_strategy(self) -> TradingStrategy[Any]:
        return get_strategy_class(self.strategy)(self.params)

    def evaluation_key(self) -> tuple[str, str, str]:
        """Bots with equal keys share one strategy computation: (symbol, interval, strategy key)."""
        return (self.symbol, self.interval, self.build_strategy().key)

    def exit_plan(self) -> ExitPlan:
        return ExitPlan(
            self.stop_loss_pct,
            self.take_profit_pct,
            self.trailing_stop_pct,
            self.stop_loss_atr,
            self.take_profit_atr,
        )

    def warmup_candles(self) -> int:
        """Closed candles the bot's strategy must be seeded with (its own declaration)."""
        return self.build_strategy().warmup_candles

    def series(self) -> dict[str, int]:
        """Every interval of ``symbol`` the bot reads (its own first, then the ones its
        strategy declares), each with the closed candles of warm-up it needs there."""
        strategy = self.build_strategy()
        return {self.interval: strategy.warmup_candles, **strategy.informative}
