"""The symbols' trading rules, read from ``exchange:symbols`` (written by ingestion) and
kept in memory; refreshed every few seconds, and a symbol the cache does not know is
asked for at once (one HMGET of just those fields), so an intent is never refused as
"unknown symbol" because the cache was read a moment before ingestion wrote its rules.
A value that does not decode is skipped and logged, never fatal.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from shared import keys
from shared.binance.rules import SymbolRules, rules_from_json
from shared.logging import get_logger

log = get_logger(__name__)


class RulesCache:
    def __init__(self, redis: Any, *, max_age_s: float = 5.0) -> None:
        self.redis = redis
        self.max_age_s = max_age_s
        self._rules: dict[str, SymbolRules] = {}
        self._loaded_at = float("-inf")

    async def refresh(self) -> None:
        raw = await self.redis.hgetall(keys.EXCHANGE_SYMBOLS)
        rules: dict[str, SymbolRules] = {}
        for name, value in raw.items():
            symbol = name.decode() if isinstance(name, bytes) else str(name)
            _decode_into(rules, symbol, value)
        self._rules = rules
        self._loaded_at = time.monotonic()

    async def get_many(self, symbols: set[str]) -> dict[str, SymbolRules | None]:
        if time.monotonic() - self._loaded_at > self.max_age_s:
            await self.refresh()
        missing = sorted(s for s in symbols if s not in self._rules)
        if missing:
            values = await self.redis.hmget(keys.EXCHANGE_SYMBOLS, missing)
            for symbol, value in zip(missing, values, strict=True):
                if value is not None:
                    _decode_into(self._rules, symbol, value)
        return {s: self._rules.get(s) for s in symbols}

    def get(self, symbol: str) -> SymbolRules | None:
        return self._rules.get(symbol)


def _decode_into(rules: dict[str, SymbolRules], symbol: str, value: Any) -> None:
    try:
        rules[symbol] = rules_from_json(value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("rules.undecodable", symbol=symbol, error=str(exc))
