"""Stream placement and SUBSCRIBE/UNSUBSCRIBE pacing (services/ingestion/control.py)."""

from __future__ import annotations

import itertools

import pytest

from services.ingestion.control import ControlPlanner, assign_streams, shard_of


def test_no_connection_gets_more_streams_than_allowed() -> None:
    placement = assign_streams([f"s{i}@kline_1m" for i in range(25)], {}, 10)
    assert sorted(len(v) for v in placement.values()) == [5, 10, 10]


def test_placed_streams_stay_on_their_connection() -> None:
    first = assign_streams(["a", "b", "c"], {}, 2)
    second = assign_streams(["a", "b", "c", "d"], first, 2)
    for cid, streams in first.items():
        assert streams <= second[cid]
    assert set().union(*second.values()) == {"a", "b", "c", "d"}


def test_unwanted_streams_leave_and_empty_connections_close() -> None:
    placement = assign_streams(["a"], {0: {"a"}, 1: {"b"}}, 2)
    assert placement == {0: {"a"}}


def test_shards_are_stable_and_in_range() -> None:
    assert shard_of("BTCUSDT:1m", 4) == shard_of("BTCUSDT:1m", 4)
    assert {shard_of(f"S{i}:1m", 4) for i in range(100)} == {0, 1, 2, 3}
    assert shard_of("BTCUSDT:1m", 1) == 0


def test_control_messages_never_exceed_the_rate() -> None:
    planner = ControlPlanner(messages_per_second=4, max_streams_per_message=2)
    planner.want({f"s{i}" for i in range(20)})
    planner.on_connected()
    sent = []
    t = 0.0
    while t < 3.0:
        for request in planner.due(t):
            sent.append(t)
            planner.on_reply(request.id, ok=True)
        t += 0.01
    for a, b in itertools.pairwise(sent):
        assert b - a >= 0.25 - 1e-9
    assert planner.synced() and len(sent) == 10


def test_a_refused_subscribe_is_retried() -> None:
    planner = ControlPlanner(messages_per_second=5)
    planner.want({"a"})
    planner.on_connected()
    [request] = planner.due(0.0)
    planner.on_reply(request.id, ok=False)
    [again] = planner.due(1.0)
    assert again.streams == ("a",) and again.id != request.id


def test_unsubscribe_goes_out_for_unwanted_streams() -> None:
    planner = ControlPlanner()
    planner.want({"a"})
    planner.on_connected(["a", "b"])
    [request] = planner.due(0.0)
    assert request.method == "UNSUBSCRIBE" and request.streams == ("b",)
    planner.on_reply(request.id, ok=True)
    assert planner.synced()


def test_unanswered_requests_time_out_and_are_resent() -> None:
    planner = ControlPlanner(reply_timeout_s=2.0)
    planner.want({"a"})
    planner.on_connected()
    [first] = planner.due(0.0)
    assert planner.due(1.0) == []
    [second] = planner.due(2.5)
    assert second.streams == first.streams


def test_the_venue_limit_cannot_be_configured_away() -> None:
    with pytest.raises(ValueError):
        ControlPlanner(messages_per_second=6)
