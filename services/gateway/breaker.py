"""A circuit breaker (pure; the clock is passed in).

``failure_threshold`` consecutive failures open it: nothing is sent for ``cooldown_s``;
then one request may probe (half-open); its success closes the breaker, its failure
opens it again. The gateway reports the state in its health key and ``stream:events``.
"""

from __future__ import annotations

import enum


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 5, cooldown_s: float = 10.0) -> None:
        if failure_threshold < 1 or cooldown_s <= 0:
            raise ValueError("need failure_threshold >= 1 and cooldown_s > 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False
        self.trips = 0

    def state(self, now: float) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if now - self.opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self, now: float) -> bool:
        """May a request be sent now? In half-open, only one probe at a time."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def retry_in(self, now: float) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_s - now)

    def success(self) -> bool:
        """Record a success; True if this closed an open breaker."""
        was_open = self.opened_at is not None
        self.failures = 0
        self.opened_at = None
        self.probing = False
        return was_open

    def failure(self, now: float) -> bool:
        """Record a failure; True if this (re)opened the breaker."""
        self.failures += 1
        reopened = self.probing
        self.probing = False
        if reopened or (self.opened_at is None and self.failures >= self.failure_threshold):
            self.opened_at = now
            self.trips += 1
            return True
        return False
