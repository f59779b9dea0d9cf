"""Settings of ``botfleet ledger`` (prefix ``BOTFLEET_``; command-line flags override)."""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.ledger.engine import DEFAULT_DATABASE_URL, async_url
from shared.settings import Settings


class LedgerSettings(Settings):
    ledger_database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="postgresql://user:pass@host/db in deployments; sqlite:///path locally",
    )
    ledger_batch: int = Field(
        default=1000, ge=1, le=100_000, description="execution reports written per transaction"
    )
    ledger_workers: int = Field(
        default=2, ge=1, le=16, description="batches written side by side (each its transaction)"
    )
    ledger_block_ms: int = Field(default=500, ge=10, le=10_000, description="XREADGROUP block")
    ledger_claim_idle_ms: int = Field(
        default=30_000,
        ge=100,
        description="a dead ledger's pending entries are taken over after this long idle",
    )
    ledger_poll_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="how often round trips, configs, equity are read"
    )
    ledger_db_retry_max_s: float = Field(
        default=10.0, gt=0, le=300, description="longest wait between retries of the database"
    )

    @field_validator("ledger_database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        async_url(value)  # raises ValueError naming the accepted schemes
        return value
