"""The exchange clock estimate follows a sped-up simulator and snaps to 1 against Binance."""

from __future__ import annotations

from shared.exchange_clock import ExchangeClock, next_sample


def test_rate_is_measured_between_samples() -> None:
    first = next_sample(None, exchange_ms=1_000_000, local_ms=10_000)
    assert first.rate == 1.0
    second = next_sample(first, exchange_ms=1_000_000 + 60 * 5_000, local_ms=15_000)
    assert second.rate == 60.0
    assert second.now(16_000) == 1_000_000 + 60 * 6_000


def test_real_exchange_clock_snaps_to_rate_one_with_offset() -> None:
    first = next_sample(None, exchange_ms=2_000_350, local_ms=2_000_000)
    second = next_sample(first, exchange_ms=2_005_352, local_ms=2_005_000)
    assert second.rate == 1.0
    assert second.now(2_010_000) == 2_010_352


def test_samples_too_close_keep_the_previous_rate() -> None:
    clock = ExchangeClock(5_000, 1_000, 60.0)
    assert next_sample(clock, 5_100, 1_100).rate == 60.0


def test_fields_round_trip_and_garbage_is_none() -> None:
    clock = ExchangeClock(123, 456, 59.5)
    assert (
        ExchangeClock.from_fields({k.encode(): v.encode() for k, v in clock.to_fields().items()})
        == clock
    )
    assert ExchangeClock.from_fields({}) is None
    assert ExchangeClock.from_fields({"exchange_ms": "x", "local_ms": "1"}) is None
