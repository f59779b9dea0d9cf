"""The gateway's rules cache never refuses a symbol whose rules ingestion has written,
however recently the cache was read (a refusal is final for the intent)."""

from __future__ import annotations

from typing import Any

from services.gateway.rules_cache import RulesCache
from shared import keys
from shared.binance.rules import rules_to_json
from tests.integration.gateway.helpers import BTC


async def test_rules_written_just_after_a_read_are_found_at_once(redis: Any) -> None:
    cache = RulesCache(redis, max_age_s=60.0)
    assert await cache.get_many({"BTCUSDT"}) == {"BTCUSDT": None}  # not written yet
    await redis.hset(keys.EXCHANGE_SYMBOLS, "BTCUSDT", rules_to_json(BTC))
    found = await cache.get_many({"BTCUSDT"})  # the cache was read a moment ago
    assert found["BTCUSDT"] == BTC
    assert cache.get("BTCUSDT") == BTC


async def test_an_undecodable_rule_is_skipped_and_the_others_kept(redis: Any) -> None:
    await redis.hset(
        keys.EXCHANGE_SYMBOLS, mapping={"BTCUSDT": rules_to_json(BTC), "BADUSDT": b"{"}
    )
    cache = RulesCache(redis)
    found = await cache.get_many({"BTCUSDT", "BADUSDT"})
    assert found == {"BTCUSDT": BTC, "BADUSDT": None}
