"""Settings of `botfleet gateway`: keys (secrets), trading mode, paper fills, guard rails.

Start-up refuses a live gateway without keys (naming the variable) and a live gateway on
``production`` without ``BOTFLEET_CONFIRM_PRODUCTION=yes``. Secrets are ``SecretStr`` and
are registered with the redactor as soon as they load (:class:`shared.settings.Settings`).
"""

from __future__ import annotations

import enum
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.binance.endpoints import urls_for
from shared.settings import BinanceEnv, Settings


class TradingMode(enum.StrEnum):
    PAPER = "paper"
    LIVE = "live"


class UnknownOrderPolicy(enum.StrEnum):
    """What start-up reconciliation does with an open ``bf-`` order nobody here knows."""

    REPORT = "report"
    CANCEL = "cancel"
    ADOPT = "adopt"


class GatewaySettings(Settings):
    """Everything the gateway reads (prefix ``BOTFLEET_``)."""

    trading_mode: TradingMode = Field(default=TradingMode.PAPER, description="paper or live")
    binance_api_key: SecretStr | None = None
    binance_api_secret: SecretStr | None = None
    binance_private_key_file: Path | None = Field(
        default=None, description="Ed25519 private key (PEM); signs instead of the HMAC secret"
    )
    confirm_production: str | None = Field(default=None, description="'yes' for live production")

    # --- paper engine -----------------------------------------------------------------
    paper_taker_fee: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    paper_maker_fee: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    paper_slippage: Decimal = Field(default=Decimal("0.0005"), ge=0, lt=1)
    paper_fee_asset: Literal["quote", "base"] = Field(
        default="quote", description="'base': a BUY's commission is taken from the base asset"
    )
    paper_balances: str = Field(
        default="USDT=100000", description="initial paper balances, ASSET=amount,ASSET=amount"
    )

    # --- guard rails (no runner or API caller can change these) ---------------------------
    gateway_allowed_symbols: str = Field(
        default="", description="comma-separated symbols the gateway may trade ('' = any)"
    )
    gateway_max_order_notional: Decimal = Field(
        default=Decimal("1000"), ge=0, description="max quote notional of one order (0 = none)"
    )
    gateway_bot_orders_per_min: int = Field(default=30, ge=0, description="per bot (0 = none)")
    gateway_fleet_orders_per_min: int = Field(default=600, ge=0, description="fleet (0 = none)")

    gateway_equity_base: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description="fleet equity (quote) before realized PnL, for max_drawdown_pct (0 = the"
        " paper quote balance in paper mode; no drawdown check live)",
    )

    # --- exchange client ----------------------------------------------------------------
    gateway_use_server_time: bool = Field(
        default=True,
        description="stamp requests with the exchange clock (false for a sped-up simulator,"
        " which also accepts wall-clock timestamps)",
    )
    gateway_recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    gateway_http_timeout_s: float = Field(default=5.0, gt=0)
    gateway_breaker_failures: int = Field(default=5, ge=1)
    gateway_breaker_cooldown_s: float = Field(default=10.0, gt=0)
    gateway_weight_limit: int = Field(default=6000, ge=1, description="REQUEST_WEIGHT per minute")
    gateway_poll_interval_s: float = Field(
        default=1.0, gt=0, description="REST poll of resting orders while the user stream is down"
    )
    gateway_stream_poll_interval_s: float = Field(
        default=30.0, gt=0, description="REST safety-net poll while the user stream is up"
    )
    gateway_user_stream: bool = Field(
        default=True, description="follow orders through the WebSocket API user data stream"
    )
    gateway_ws_api_url: str | None = Field(default=None, description="explicit WS API endpoint")
    gateway_unknown_order_policy: UnknownOrderPolicy = Field(
        default=UnknownOrderPolicy.REPORT,
        description="an open bf- order on the exchange with no record here at start-up:"
        " report (leave it), cancel it, or adopt it (record, follow and report it)",
    )
    gateway_auth_probe_max_s: float = Field(
        default=60.0, gt=0, description="longest wait between credential probes after a refusal"
    )

    # --- consumer -----------------------------------------------------------------------
    gateway_batch: int = Field(default=256, ge=1, le=10_000)
    gateway_claim_idle_ms: int = Field(default=15_000, ge=100)
    gateway_retry_idle_ms: int = Field(
        default=0,
        ge=0,
        description="own pending entries idle this long are retried (0 = HTTP timeout + 1 s)",
    )
    gateway_max_deliveries: int = Field(
        default=10,
        ge=0,
        description="an intent entry delivered more often is dead-lettered (0 = no limit),"
        " unless its order may be on the exchange",
    )
    gateway_record_retention_s: int = Field(
        default=7 * 86_400, ge=0, description="life of a final order:{cid} record (0 = keep)"
    )

    @field_validator("paper_balances")
    @classmethod
    def _balances(cls, value: str) -> str:
        parse_balances(value)
        return value

    @model_validator(mode="after")
    def _live_needs_keys(self) -> GatewaySettings:
        if self.trading_mode is not TradingMode.LIVE:
            return self
        if self.binance_api_key is None or not self.binance_api_key.get_secret_value():
            raise ValueError("BOTFLEET_BINANCE_API_KEY is required in live mode")
        if self.binance_private_key_file is None and (
            self.binance_api_secret is None or not self.binance_api_secret.get_secret_value()
        ):
            raise ValueError(
                "BOTFLEET_BINANCE_API_SECRET (or BOTFLEET_BINANCE_PRIVATE_KEY_FILE) is required"
                " in live mode"
            )
        if (
            self.binance_private_key_file is not None
            and not self.binance_private_key_file.is_file()
        ):
            raise ValueError(
                f"BOTFLEET_BINANCE_PRIVATE_KEY_FILE: no such file {self.binance_private_key_file}"
            )
        if self.binance_env is BinanceEnv.PRODUCTION and self.confirm_production != "yes":
            raise ValueError(
                "BOTFLEET_CONFIRM_PRODUCTION must be 'yes' for live orders on production"
            )
        return self

    @property
    def ws_api_url(self) -> str:
        """The WebSocket API endpoint (the simulator serves it under its WS base)."""
        if self.gateway_ws_api_url:
            return self.gateway_ws_api_url
        if self.binance_env is BinanceEnv.SIM:
            return f"{self.ws_url}/ws-api/v3"
        return urls_for(self.binance_env.value).ws_api

    @property
    def allowed_symbols(self) -> frozenset[str]:
        return frozenset(
            s.strip().upper() for s in self.gateway_allowed_symbols.split(",") if s.strip()
        )

    @property
    def initial_paper_balances(self) -> dict[str, Decimal]:
        return parse_balances(self.paper_balances)


def parse_balances(text: str) -> dict[str, Decimal]:
    """``"USDT=1000,BTC=0.5"`` -> ``{"USDT": Decimal("1000"), "BTC": Decimal("0.5")}``."""
    result: dict[str, Decimal] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        asset, sep, amount = part.partition("=")
        if not sep or not asset.strip():
            raise ValueError(f"expected ASSET=amount, got {part!r}")
        try:
            value = Decimal(amount.strip())
        except ArithmeticError as exc:
            raise ValueError(f"bad amount in {part!r}") from exc
        if not value.is_finite() or value < 0:
            raise ValueError(f"bad amount in {part!r}")
        result[asset.strip().upper()] = value
    return result
