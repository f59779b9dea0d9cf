"""Portfolio risk limits: the ``risk:limits`` hash the API writes and the gateway reads.

Every field is optional; a missing field means "no limit". Values are decimal strings
in the hash (integers for counts). Limits only ever block new entries: exits are never
blocked by portfolio risk (DESIGN "Ownership and failure").

==========================  ============================================================
field                       meaning
==========================  ============================================================
max_exposure_quote          total quote value of open positions across the fleet
max_symbol_exposure_quote   quote value of open positions in one symbol
max_position_quote          quote value of one entry order
max_open_positions          number of bots holding a position at once
max_daily_loss_quote        realized loss since 00:00 UTC after which entries stop
max_drawdown_pct            drawdown of fleet equity from its peak, percent
==========================  ============================================================
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RiskLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_exposure_quote: Decimal | None = Field(
        None, gt=0, description="total quote value of open positions"
    )
    max_symbol_exposure_quote: Decimal | None = Field(
        None, gt=0, description="quote value of open positions in one symbol"
    )
    max_position_quote: Decimal | None = Field(
        None, gt=0, description="quote value of one entry order"
    )
    max_open_positions: int | None = Field(
        None, ge=0, le=100_000, description="bots holding a position at once"
    )
    max_daily_loss_quote: Decimal | None = Field(
        None, gt=0, description="realized loss since 00:00 UTC that stops new entries"
    )
    max_drawdown_pct: Decimal | None = Field(
        None, gt=0, le=100, description="drawdown of fleet equity from its peak, percent"
    )

    def to_hash(self) -> dict[str, str]:
        """The fields that are set, as hash values (unset fields are deleted): plain
        decimal strings, never exponent notation (the gateway's scripts read them as
        integer units by string operations, services/gateway/lua/money.lua)."""
        return {
            k: format(v, "f") if isinstance(v, Decimal) else str(v)
            for k, v in self.model_dump().items()
            if v is not None
        }

    @classmethod
    def from_hash(cls, fields: dict[Any, Any]) -> RiskLimits:
        """Parse the ``risk:limits`` hash; unknown fields are ignored (a newer writer)."""
        text = {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in fields.items()
        }
        return cls.model_validate({k: v for k, v in text.items() if k in cls.model_fields})
