"""The fleet-wide weight and order budgets hold across clients sharing one Redis."""

from __future__ import annotations

import asyncio

import pytest

from shared.ratelimit import (
    BudgetExhausted,
    OrderBudget,
    RateLimitRule,
    WeightBudget,
    rules_from_exchange_info,
)
from shared.redis import create_redis


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def test_two_processes_never_exceed_one_minute_budget(clean_redis_url: str) -> None:
    clock = Clock(1_700_000_000_000 - 1_700_000_000_000 % 60_000 + 5_000)
    clients = [create_redis(clean_redis_url) for _ in range(2)]
    budgets = [WeightBudget(c, limit_per_minute=100, margin=0.1, clock=clock) for c in clients]
    granted = 0

    async def take(budget: WeightBudget) -> None:
        nonlocal granted
        for _ in range(50):
            try:
                await budget.try_reserve(2)
                granted += 2
            except BudgetExhausted:
                pass

    await asyncio.gather(*(take(b) for b in budgets))
    assert granted == 90  # 100 minus the 10 % margin, never more
    with pytest.raises(BudgetExhausted) as info:
        await budgets[0].try_reserve(1)
    assert info.value.wait_until_ms == (clock.now // 60_000 + 1) * 60_000
    clock.now += 60_000  # the next exchange minute starts empty
    await budgets[1].try_reserve(2)
    for c in clients:
        await c.aclose()


async def test_header_correction_and_fleet_pause(clean_redis_url: str) -> None:
    clock = Clock(1_700_000_040_000)
    a = WeightBudget(create_redis(clean_redis_url), limit_per_minute=1000, margin=0.0, clock=clock)
    b = WeightBudget(create_redis(clean_redis_url), limit_per_minute=1000, margin=0.0, clock=clock)
    await a.try_reserve(10)
    await a.correct_from_header(990)  # the exchange saw more than we reserved
    assert await b.used() == 990
    with pytest.raises(BudgetExhausted):
        await b.try_reserve(20)

    clock.now += 60_000
    until = await a.note_rate_limited(429, 7)
    assert until == clock.now + 7_000
    with pytest.raises(BudgetExhausted) as info:
        await b.try_reserve(1)  # another process pauses too
    assert info.value.wait_until_ms == until
    clock.now += 7_001
    await b.try_reserve(1)


async def test_reserve_waits_for_the_next_window_but_bounded(clean_redis_url: str) -> None:
    budget = WeightBudget(
        create_redis(clean_redis_url), limit_per_minute=10, margin=0.0, max_wait_s=0.5
    )
    # Fill this minute, then ask for more with a bound shorter than the wait.
    await budget.correct_from_header(10)
    with pytest.raises(BudgetExhausted):
        await budget.reserve(5, max_wait_s=0.0)


async def test_order_budget_counts_every_window(clean_redis_url: str) -> None:
    clock = Clock(1_700_000_000_000)
    rules = rules_from_exchange_info(
        [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 5},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 7},
        ]
    )
    assert RateLimitRule("ORDERS", "SECOND", 10, 5) in rules
    budget = OrderBudget(create_redis(clean_redis_url), rules, margin=0.0, clock=clock)
    for _ in range(5):
        await budget.try_reserve()
    with pytest.raises(BudgetExhausted, match="order count"):
        await budget.try_reserve()
    clock.now += 10_000
    await budget.try_reserve()
    await budget.try_reserve()
    with pytest.raises(BudgetExhausted) as info:
        await budget.try_reserve()  # the day's 7 are used
    assert info.value.wait_until_ms == (clock.now // 86_400_000 + 1) * 86_400_000


async def test_backfill_leaves_part_of_every_minute_to_orders(clean_redis_url: str) -> None:
    """A background caller (ingestion's backfill) stops at its share of the minute;
    a foreground caller (a gateway placing an exit) still finds weight."""
    clock = Clock(1_700_000_000_000 - 1_700_000_000_000 % 60_000 + 1_000)
    backfill = WeightBudget(
        create_redis(clean_redis_url),
        limit_per_minute=100,
        margin=0.0,
        clock=clock,
        background=True,
    )
    gateway = WeightBudget(
        create_redis(clean_redis_url), limit_per_minute=100, margin=0.0, clock=clock
    )
    taken = 0
    with pytest.raises(BudgetExhausted):
        while True:
            await backfill.try_reserve(2)
            taken += 2
    assert taken == 70
    for _ in range(15):
        await gateway.try_reserve(2)
    with pytest.raises(BudgetExhausted):
        await gateway.try_reserve(2)
