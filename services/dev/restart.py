"""When to restart a child that died: capped exponential backoff with jitter.

Pure: the supervisor passes in how long the child ran and a random number. A child
that stayed up for ``stable_after_s`` is considered healthy again, so its next crash
starts over from the shortest delay; one that keeps crashing waits longer each time,
up to ``cap_s``, and is given up on after ``max_failures`` crashes in a row (``None``:
never), so a service that cannot start does not spin forever.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    base_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25  # the delay is scaled by a factor in [1 - jitter, 1]
    stable_after_s: float = 30.0
    max_failures: int | None = 20

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.factor < 1:
            raise ValueError("need 0 < base_s <= cap_s and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, failures: int, rand: float) -> float:
        """Delay before the restart that follows the ``failures``-th crash in a row
        (1-based); ``rand`` in [0, 1) picks the jitter."""
        if failures < 1:
            raise ValueError("failures is 1-based")
        # Cap the exponent first: factor ** failures overflows long before the cap matters.
        raw = self.base_s * self.factor ** min(failures - 1, 64)
        return min(self.cap_s, raw) * (1 - self.jitter * rand)


@dataclass(frozen=True)
class RestartDecision:
    failures: int  # crashes in a row, this one included
    delay_s: float
    give_up: bool


def on_exit(
    policy: RestartPolicy, failures_before: int, uptime_s: float, rand: float
) -> RestartDecision:
    """What to do after a child exited on its own after ``uptime_s`` seconds."""
    failures = 1 if uptime_s >= policy.stable_after_s else failures_before + 1
    give_up = policy.max_failures is not None and failures > policy.max_failures
    return RestartDecision(failures, 0.0 if give_up else policy.delay(failures, rand), give_up)
