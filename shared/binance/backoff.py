"""Retry and reconnect delays: a pure, jittered, capped exponential backoff.

Owns: the delay sequence every Binance client sleeps through (DESIGN "Ownership and
failure": capped exponential backoff with jitter). No clock and no sleeping here —
the shell sleeps; tests read the numbers. Delays are seconds (time, not money).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Protocol


class Random(Protocol):
    """What the backoff needs from a random source (``random.Random`` fits)."""

    def random(self) -> float: ...


def backoff_delays(base: float, cap: float, rng: Random, *, factor: float = 2.0) -> Iterator[float]:
    """Endless delays: attempt ``n`` waits in ``[d/2, d]`` with ``d = min(cap, base * factor**n)``.

    "Equal jitter": half of the step is fixed, so delays keep growing, half is random,
    so a fleet of clients reconnecting together spreads out. Never above ``cap``.
    """
    if base <= 0 or cap < base or factor < 1:
        raise ValueError(f"need 0 < base <= cap and factor >= 1, got {base=}, {cap=}, {factor=}")
    step = base
    while True:
        half = step / 2
        yield half + rng.random() * half
        step = min(cap, step * factor)


def bounded(delays: Iterator[float], attempts: int) -> Iterator[float]:
    """At most ``attempts - 1`` delays: the waits between ``attempts`` tries."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    return itertools.islice(delays, attempts - 1)


def rate_limit_delay(retry_after_s: float | None, fallback: float) -> float:
    """How long to pause after a 429/418: the venue's ``Retry-After`` if given, else ``fallback``."""
    return retry_after_s if retry_after_s is not None and retry_after_s >= 0 else fallback
