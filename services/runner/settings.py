"""Settings of ``botfleet runner`` (prefix ``BOTFLEET_``; command-line flags override)."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.settings import Settings
from shared.strategies.config import WARMUP_CANDLES_MAX


class RunnerSettings(Settings):
    runner_capacity: int = Field(
        default=2000, ge=1, le=1_000_000, description="most bots this runner holds at once"
    )
    runner_lease_ms: int = Field(
        default=10_000,
        ge=500,
        le=300_000,
        description="lease length; a dead runner's bots are adopted after about this long",
    )
    runner_reconcile_interval_s: float = Field(
        default=3.0, gt=0, le=300, description="how often desired state is re-read from Redis"
    )
    runner_stale_grace_s: float = Field(
        default=15.0,
        ge=0,
        le=86_400,
        description="data older than one interval plus this is stale: no new entries",
    )
    runner_block_ms: int = Field(
        default=500,
        ge=10,
        le=10_000,
        description="XREAD block time; also the longest delay before new streams are read",
    )
    runner_warmup_candles: int = Field(
        default=1000,
        ge=1,
        le=WARMUP_CANDLES_MAX,
        description=(
            "the fewest closed candles read to seed a strategy; a strategy declaring more "
            "warm-up is seeded with its own declaration (docs/strategies.md, 'Warm-up')"
        ),
    )
    runner_log_maxlen: int = Field(
        default=1000, ge=10, description="entries kept in each bot:{id}:log (approximate)"
    )
    runner_trades_maxlen: int = Field(
        default=10_000, ge=10, description="entries kept in each bot:{id}:trades (approximate)"
    )
    runner_log_holds: bool = Field(
        default=True, description="also log HOLD decisions (written after intents)"
    )
    runner_pending_resend_s: float = Field(
        default=30.0,
        gt=0,
        description="re-send a pending intent (same id, idempotent) after this long without a final report",
    )
    runner_pending_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description=(
            "the bounded wait: a pending intent without a final report for this long puts "
            "its bot in needs_attention (exits still work) and lets a stop complete"
        ),
    )
    runner_catch_up_candles: int = Field(
        default=10,
        ge=0,
        le=1000,
        description=(
            "on adoption, decide at most this many candles that closed while the bot had "
            "no owner (older ones are logged as skipped)"
        ),
    )
    runner_command_batch: int = Field(
        default=2000, ge=1, le=100_000, description="bot commands read per XREAD"
    )
    runner_claim_jitter_ms: int = Field(
        default=150, ge=0, le=10_000, description="random delay before claiming, spreads claims"
    )

    @model_validator(mode="after")
    def _lease_outlives_reconcile(self) -> RunnerSettings:
        if self.runner_reconcile_interval_s * 1000 >= self.runner_lease_ms:
            raise ValueError(
                "runner_reconcile_interval_s must be shorter than runner_lease_ms "
                "(leases are renewed on that cadence or faster)"
            )
        return self

    @property
    def renew_interval_s(self) -> float:
        """Leases are renewed three times per lease length."""
        return self.runner_lease_ms / 3000.0
