"""Settings of ``botfleet backtest-worker`` (prefix ``BOTFLEET_``; flags override)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import Settings


class WorkerSettings(Settings):
    backtest_result_ttl_s: int = Field(
        default=7 * 86_400, ge=60, description="how long a job, its result and candles are kept"
    )
    backtest_progress_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="how often a running job's progress is written"
    )
    backtest_claim_idle_ms: int = Field(
        default=60_000,
        ge=1_000,
        description="a job whose worker has not touched it this long is taken over",
    )
    backtest_block_ms: int = Field(default=2_000, ge=10, le=60_000, description="XREADGROUP block")
    klines_cache: Path | None = Field(
        default=None,
        description="kline cache folder (default ~/.cache/botfleet/klines, as the CLI)",
    )
