"""Request-weight and order-count windows; the fault injector's state."""

from __future__ import annotations

import msgspec
import pytest

from services.exchange_sim.faults import FaultConfig, Faults, FaultUpdate
from services.exchange_sim.limits import Limits, RateLimited

MINUTE = 60_000
T0 = 1_795_629_000_000  # a minute boundary


def test_weight_past_the_limit_is_429_with_retry_after_until_the_next_minute() -> None:
    limits = Limits(weight_per_minute=10, speed=1.0)
    assert limits.charge("ip", 10, T0 + 15_000) == 10
    with pytest.raises(RateLimited) as err:
        limits.charge("ip", 1, T0 + 15_000)
    assert (err.value.status, err.value.code, err.value.retry_after_s) == (429, -1003, 45)
    assert limits.charge("ip", 1, T0 + MINUTE) == 1  # a new minute starts clean
    assert limits.charge("other-ip", 10, T0) == 10  # weight is per IP


def test_retry_after_is_in_wall_seconds_at_speed() -> None:
    limits = Limits(weight_per_minute=1, speed=60.0)
    limits.charge("ip", 1, T0)
    with pytest.raises(RateLimited) as err:
        limits.charge("ip", 1, T0 + 1000)
    assert err.value.retry_after_s == 1


def test_a_client_that_keeps_sending_while_limited_is_banned_with_418() -> None:
    limits = Limits(weight_per_minute=1, ban_after=3)
    limits.charge("ip", 1, T0)
    for _ in range(3):
        with pytest.raises(RateLimited) as err:
            limits.charge("ip", 1, T0 + 1)
        assert err.value.status == 429
    with pytest.raises(RateLimited) as err:
        limits.charge("ip", 1, T0 + 2)
    assert err.value.status == 418
    assert "IP banned until" in err.value.msg
    with pytest.raises(RateLimited) as err:
        limits.charge("ip", 1, T0 + MINUTE)  # still banned in the next minute
    assert err.value.status == 418
    assert limits.charge("ip", 1, T0 + 2 + 2 * MINUTE) == 1  # the 2-minute ban lifted


def test_the_snapshot_reports_weight_served_per_minute_and_refusals() -> None:
    limits = Limits(weight_per_minute=5, ban_after=1)
    limits.charge("a", 3, T0)
    limits.charge("b", 4, T0 + 1)
    for _ in range(2):
        with pytest.raises(RateLimited):
            limits.charge("a", 3, T0 + 2)
    snap = limits.snapshot()
    assert snap["weight_per_minute"] == {str(T0): 7}
    assert (snap["answered_429"], snap["answered_418"]) == (1, 1)


def test_successful_orders_refund_their_weight() -> None:
    limits = Limits(weight_per_minute=5)
    limits.charge("ip", 1, T0)
    assert limits.refund("ip", 1) == 0


def test_order_count_per_10_seconds_is_1015() -> None:
    limits = Limits(orders_per_10s=2)
    assert limits.count_order("acct", T0) == (1, 1)
    assert limits.count_order("acct", T0 + 1) == (2, 2)
    with pytest.raises(RateLimited) as err:
        limits.count_order("acct", T0 + 2)
    assert (err.value.code, err.value.status) == (-1015, 429)
    assert limits.count_order("acct", T0 + 10_000) == (1, 3)


def test_fault_updates_merge_and_bad_values_are_refused() -> None:
    faults = Faults(seed=1)
    faults.update(FaultUpdate(latency_ms=50, frozen=["btcusdt"]))
    faults.update(FaultUpdate(error_rate=0.5))
    assert faults.as_dict()["latency_ms"] == 50
    assert faults.is_frozen("BTCUSDT") and not faults.is_frozen("ETHUSDT")
    with pytest.raises(ValueError, match="error_rate"):
        faults.update(FaultUpdate(error_rate=2.0))
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"nonsense": 1}', type=FaultUpdate)
    faults.clear()
    assert faults.config == FaultConfig()


def test_fault_dice_are_seeded_and_follow_the_rate() -> None:
    a = Faults(FaultConfig(drop_kline_rate=0.3), seed=5)
    b = Faults(FaultConfig(drop_kline_rate=0.3), seed=5)
    rolls = [a.drop_kline() for _ in range(2000)]
    assert rolls == [b.drop_kline() for _ in range(2000)]
    assert 500 < sum(rolls) < 700
    assert not any(Faults(seed=5).fail_request() for _ in range(100))
    assert Faults(FaultConfig(frozen=["*"])).is_frozen("ANY")


def test_a_server_shutdown_grace_outside_0_to_an_hour_is_refused() -> None:
    ok = msgspec.json.decode(b'{"server_shutdown":true,"shutdown_grace_s":0.5}', type=FaultUpdate)
    assert ok.shutdown_grace_s == 0.5
    for bad in (b"-1", b"7200"):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(b'{"shutdown_grace_s":' + bad + b"}", type=FaultUpdate)
