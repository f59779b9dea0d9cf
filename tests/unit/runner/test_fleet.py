"""Claims spread so that runners end up with similar loads (issue 6)."""

from __future__ import annotations

from services.runner.fleet import excess, fair_share


def test_a_runner_claims_up_to_the_fleet_average_and_more_only_when_others_are_full() -> None:
    fleet = {"a": (0, 100), "b": (0, 100)}
    assert fair_share(fleet, "a", 0, 100, 10) == 5
    full = {"a": (0, 100), "b": (100, 100)}
    assert fair_share(full, "a", 0, 100, 10) == 10
    assert fair_share(full, "a", 98, 100, 10) == 2  # never beyond its capacity


def test_only_a_lasting_excess_above_the_average_with_room_elsewhere_is_handed_over() -> None:
    assert excess({"a": (10, 100), "b": (0, 100)}, "a", 10) == 1  # a tenth at a time
    assert excess({"a": (6, 100), "b": (5, 100)}, "a", 6) == 0  # within one of the average
    assert excess({"a": (10, 10)}, "a", 10) == 0  # alone
