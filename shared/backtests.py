"""A backtest job as the API takes it and the backtest worker runs it: the request
model (validated in both places by this one model), the job's states, and the UTC
time parsing of ``--from/--to`` and the request's ``from``/``to``.

The request is the bot config ``POST /api/v1/bots`` takes (``BotConfig``, so its
errors are the API's, worded by :mod:`shared.validation`), a range of candle open
times fetched over REST by the worker, and the costs of the fill model
(docs/backtest.md).
"""

from __future__ import annotations

import enum
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.binance.intervals import interval_ms
from shared.strategies.config import BotConfig

# A job may cover at most this many candles (a year of 1m is 525,600).
MAX_JOB_CANDLES = 2_000_000


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def parse_when(text: str, what: str = "time") -> int:
    """A UTC date (``2025-01-01``), an ISO datetime (naive = UTC) or epoch ms, as epoch ms."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            parsed = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"{what}: {text!r} is not a date (2025-01-01), an ISO time or epoch ms"
        ) from None
    return int(parsed.timestamp() * 1000)


class BacktestRequest(BaseModel):
    """``POST /api/v1/bots``'s body as ``bot``, the range (``from`` inclusive, ``to``
    exclusive; default now) and the costs (as ``botfleet backtest``'s options)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    bot: BotConfig
    start: int = Field(
        alias="from", description="first candle open time: UTC date, ISO time or epoch ms"
    )
    end: int = Field(
        default_factory=lambda: int(time.time() * 1000),
        alias="to",
        description="candles opening before this (exclusive; default: now)",
    )
    fee: Decimal = Field(Decimal("0.001"), ge=0, lt=1, description="taker fee rate")
    slippage: Decimal = Field(
        Decimal("0.0005"), ge=0, lt=1, description="slippage, a fraction of the price"
    )
    fee_asset: Literal["quote", "base"] = Field("quote", description="asset of BUY commissions")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_when(value, "time")
        return value

    @model_validator(mode="after")
    def _range(self) -> BacktestRequest:
        if self.end <= self.start:
            raise ValueError("to must be after from")
        candles = (self.end - self.start) // interval_ms(self.bot.interval)
        if candles > MAX_JOB_CANDLES:
            raise ValueError(
                f"the range holds {candles:,} {self.bot.interval} candles, "
                f"more than {MAX_JOB_CANDLES:,}"
            )
        return self

    def candles(self) -> int:
        """How many candles open in the range (an upper bound: the exchange may lack some)."""
        step = interval_ms(self.bot.interval)
        first = -(-self.start // step) * step
        return max(0, -(-(self.end - first) // step))
