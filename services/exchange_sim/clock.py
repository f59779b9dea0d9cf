"""The exchange clock: exchange time runs ``speed`` times faster than wall time.

Owns the one mapping between wall time and exchange time. Exchange time starts at
``start_ms`` when the clock is created and every timestamp the simulator serves
(serverTime, kline ``t``/``T``/``E``, ``transactTime``) is read from it. A clock can
be given a fake wall-time function, so everything built on it is testable without
sleeping. ``offset_ms`` (the ``clock_offset_ms`` fault) shifts the exchange clock
against every client's clock, as a venue whose time differs from yours.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ExchangeClock:
    def __init__(
        self,
        start_ms: int,
        speed: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.start_ms = start_ms
        self.speed = speed
        self._wall = wall
        self._wall0 = wall()
        self.offset_ms = 0

    def now_ms(self) -> int:
        """Current exchange time, epoch milliseconds."""
        return (
            self.start_ms + self.offset_ms + int((self._wall() - self._wall0) * 1000.0 * self.speed)
        )

    def wall_seconds_until(self, exchange_ms: int) -> float:
        """Wall seconds until the exchange clock reads ``exchange_ms`` (0 if past)."""
        return max(0.0, (exchange_ms - self.now_ms()) / 1000.0 / self.speed)

    def wall_seconds(self, exchange_ms: float) -> float:
        """How long an exchange-time span lasts in wall seconds."""
        return exchange_ms / 1000.0 / self.speed
