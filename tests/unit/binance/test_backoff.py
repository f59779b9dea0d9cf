"""Backoff: jittered, growing, capped delays, computed without a clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.binance.backoff import backoff_delays, bounded, rate_limit_delay


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_delays_double_until_the_cap() -> None:
    top = list(bounded(backoff_delays(0.5, 8.0, Fixed(1.0)), 8))
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    bottom = list(bounded(backoff_delays(0.5, 8.0, Fixed(0.0)), 4))
    assert bottom == [0.25, 0.5, 1.0]


@given(
    st.floats(min_value=0.01, max_value=5),
    st.floats(min_value=5, max_value=120),
    st.integers(min_value=0, max_value=2**32),
)
def test_delays_stay_within_half_and_whole_step_and_never_exceed_cap(
    base: float, cap: float, seed: int
) -> None:
    step = base
    for delay in bounded(backoff_delays(base, cap, random.Random(seed)), 40):
        assert step / 2 <= delay <= step <= cap
        step = min(cap, step * 2)


def test_same_seed_same_delays() -> None:
    a = list(bounded(backoff_delays(1, 30, random.Random(7)), 10))
    b = list(bounded(backoff_delays(1, 30, random.Random(7)), 10))
    assert a == b


def test_bounded_gives_the_waits_between_attempts() -> None:
    assert list(bounded(backoff_delays(1, 2, Fixed(1)), 1)) == []
    with pytest.raises(ValueError):
        bounded(backoff_delays(1, 2, Fixed(1)), 0)
    with pytest.raises(ValueError):
        next(backoff_delays(2, 1, Fixed(1)))


def test_rate_limit_delay_prefers_the_venues_retry_after() -> None:
    assert rate_limit_delay(12.0, 1.0) == 12.0
    assert rate_limit_delay(None, 1.0) == 1.0
