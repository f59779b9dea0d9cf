"""The restart policy of ``botfleet dev``: capped exponential backoff with jitter,
reset after a stable run, bounded number of crashes in a row."""

from __future__ import annotations

import pytest

from services.dev.restart import RestartPolicy, on_exit


def test_delay_doubles_per_crash_in_a_row_and_never_exceeds_the_cap() -> None:
    policy = RestartPolicy(base_s=0.5, cap_s=10.0, jitter=0.0)
    delays = [policy.delay(n, 0.0) for n in range(1, 9)]
    assert delays[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert delays[5:] == [10.0, 10.0, 10.0]
    assert policy.delay(10_000, 0.0) == 10.0  # no overflow for huge counts


def test_jitter_only_shortens_the_delay_within_its_fraction() -> None:
    policy = RestartPolicy(base_s=1.0, cap_s=30.0, jitter=0.25)
    assert policy.delay(3, 0.0) == 4.0
    assert policy.delay(3, 0.999999) == pytest.approx(3.0, abs=1e-5)


def test_quick_crashes_count_up_and_a_stable_run_starts_over() -> None:
    policy = RestartPolicy(base_s=1.0, cap_s=60.0, jitter=0.0, stable_after_s=30.0)
    first = on_exit(policy, 0, uptime_s=0.2, rand=0.0)
    second = on_exit(policy, first.failures, uptime_s=0.2, rand=0.0)
    assert (first.failures, first.delay_s) == (1, 1.0)
    assert (second.failures, second.delay_s) == (2, 2.0)
    after_stable = on_exit(policy, 7, uptime_s=45.0, rand=0.0)
    assert (after_stable.failures, after_stable.delay_s) == (1, 1.0)


def test_gives_up_after_max_failures_in_a_row_only() -> None:
    policy = RestartPolicy(max_failures=3, jitter=0.0)
    assert not on_exit(policy, 2, uptime_s=0.1, rand=0.0).give_up
    assert on_exit(policy, 3, uptime_s=0.1, rand=0.0).give_up
    assert not on_exit(RestartPolicy(max_failures=None), 10_000, 0.1, 0.0).give_up


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(base_s=0)
    with pytest.raises(ValueError):
        RestartPolicy(base_s=5, cap_s=1)
    with pytest.raises(ValueError):
        RestartPolicy(jitter=1.0)
