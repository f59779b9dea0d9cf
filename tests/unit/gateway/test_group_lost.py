"""Every way Redis says a consumer group is gone is recognised (pure: error texts)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shared.streams import is_group_lost, is_nogroup


def test_nogroup_and_a_blocked_read_woken_by_the_deletion_mean_the_group_is_lost() -> None:
    lost = [
        ResponseError(
            "NOGROUP No such key 'stream:order-intents' or consumer group 'gateway' in"
            " XREADGROUP with GROUP option"
        ),
        ResponseError("UNBLOCKED the stream key no longer exists"),
    ]
    assert all(is_group_lost(exc) and is_nogroup(exc) for exc in lost)


def test_other_errors_are_not_a_lost_group() -> None:
    others = [
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ResponseError("BUSYGROUP Consumer Group name already exists"),
        RedisConnectionError("Connection closed by server."),
        ValueError("NOGROUP"),  # not a Redis reply
    ]
    assert not any(is_group_lost(exc) for exc in others)
