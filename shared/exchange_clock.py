"""The exchange's clock as every process can estimate it from Redis.

Data ages (the stale-data gate) must be measured on the clock the data was stamped
with: Binance's server time, which the simulator runs ``--speed`` times faster than
wall time. Ingestion samples ``GET /api/v3/time`` periodically and writes the latest
sample and the measured rate to ``market:clock``; runners and the API estimate
"exchange now" from it. Against Binance the rate is 1 and the estimate is the wall
clock plus the measured offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import keys

# Against a real exchange clock drift is noise: snap rates this close to 1.
_SNAP = 0.02
MIN_RATE, MAX_RATE = 0.01, 100_000.0


@dataclass(frozen=True, slots=True)
class ExchangeClock:
    """A sample of the exchange clock and how fast it runs against the local clock."""

    exchange_ms: int
    local_ms: int
    rate: float = 1.0

    def now(self, local_now_ms: int) -> int:
        """Estimated exchange time at ``local_now_ms``."""
        return self.exchange_ms + int((local_now_ms - self.local_ms) * self.rate)

    def to_fields(self) -> dict[str, str]:
        return {
            "exchange_ms": str(self.exchange_ms),
            "local_ms": str(self.local_ms),
            "rate": repr(self.rate),
        }

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> ExchangeClock | None:
        def text(name: str) -> str | None:
            value = fields.get(name, fields.get(name.encode()))
            return value.decode() if isinstance(value, bytes) else value

        try:
            exchange_ms, local_ms, rate = text("exchange_ms"), text("local_ms"), text("rate")
            if exchange_ms is None or local_ms is None:
                return None
            return cls(int(exchange_ms), int(local_ms), float(rate or 1.0))
        except ValueError:
            return None


def next_sample(previous: ExchangeClock | None, exchange_ms: int, local_ms: int) -> ExchangeClock:
    """The clock after a new sample: the rate is measured between samples far enough
    apart, kept within sane bounds, and snapped to 1 when the clocks run together."""
    rate = previous.rate if previous is not None else 1.0
    if previous is not None and local_ms - previous.local_ms >= 500:
        measured = (exchange_ms - previous.exchange_ms) / (local_ms - previous.local_ms)
        rate = 1.0 if abs(measured - 1.0) < _SNAP else min(MAX_RATE, max(MIN_RATE, measured))
    return ExchangeClock(exchange_ms, local_ms, rate)


async def read_exchange_clock(redis: Any) -> ExchangeClock | None:
    return ExchangeClock.from_fields(await redis.hgetall(keys.MARKET_CLOCK))
