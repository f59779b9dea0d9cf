"""Settings of ``botfleet ingestion`` (environment ``BOTFLEET_INGESTION_*``, flags override)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class IngestionSettings(Settings):
    ingestion_max_streams_per_connection: int = Field(
        default=1024, ge=1, le=1024, description="streams per WebSocket (venue limit 1024)"
    )
    ingestion_control_messages_per_second: float = Field(
        default=3.0,
        gt=0,
        le=5,
        description="SUBSCRIBE/UNSUBSCRIBE rate per connection (venue: 5 incl. pongs)",
    )
    # The runner seeds every strategy from the list and an adopter replays the candles
    # missed after it. A series whose bots declare a deeper warm-up (market:warmup) keeps
    # that many plus the margin, backfilled into the past (services/ingestion/depth.py).
    ingestion_candles_max: int = Field(
        default=1100, ge=1, description="length of each candle list without a deeper warm-up"
    )
    ingestion_candles_margin: int = Field(
        default=100,
        ge=0,
        le=10_000,
        description="candles kept beyond a series' declared warm-up (an adopter's catch-up)",
    )
    ingestion_candle_stream_maxlen: int = Field(default=10_000, ge=100)
    ingestion_tick_stream_maxlen: int = Field(default=1_000, ge=10)
    ingestion_history: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="candles fetched for a stream with nothing stored (one klines page)",
    )
    ingestion_max_backfill: int = Field(
        default=5000, ge=1, description="oldest candle a backfill reaches back to, in intervals"
    )
    ingestion_backfill_concurrency: int = Field(default=8, ge=1)
    ingestion_shards: int = Field(default=1, ge=1, le=1024)
    ingestion_max_shards: int = Field(default=0, ge=0, description="0: take every free shard")
    ingestion_lease_ttl_s: float = Field(default=5.0, gt=0.5)
    ingestion_reconcile_interval_s: float = Field(default=1.0, gt=0, le=1.0)
    ingestion_stale_grace_s: float = Field(
        default=5.0, gt=0, description="silence beyond the update period before a feed is dead"
    )
    ingestion_connection_max_age_s: float = Field(default=23.5 * 3600, gt=1)
    ingestion_exchange_info_interval_s: float = Field(default=3600.0, gt=1)
    # How often the exchange clock is sampled for market:clock (weight 1 a sample).
    ingestion_clock_interval_s: float = Field(default=5.0, gt=0.1)
    ingestion_weight_limit: int = Field(default=6000, ge=1, description="until exchangeInfo says")
    ingestion_weight_margin: float = Field(default=0.1, ge=0, lt=1)
    ingestion_rest_timeout_s: float = Field(default=10.0, gt=0)
    ingestion_reconnect_base_s: float = Field(default=0.2, gt=0)
    ingestion_reconnect_cap_s: float = Field(default=30.0, gt=0)
