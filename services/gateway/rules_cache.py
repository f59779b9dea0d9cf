"""The symbols' trading rules, read from ``exchange:symbols`` (written by ingestion) and
kept in memory; refreshed every few seconds, and at once (at most once a second) when
an intent names a symbol the cache does not know. A value that does not decode is
skipped and logged, never fatal.
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
    def __init__(self, redis: Any, *, max_age_s: float = 5.0, miss_interval_s: float = 1.0) -> None:
        self.redis = redis
        self.max_age_s = max_age_s
        self.miss_interval_s = miss_interval_s
        self._rules: dict[str, SymbolRules] = {}
        self._loaded_at = float("-inf")

    async def refresh(self) -> None:
        raw = await self.redis.hgetall(keys.EXCHANGE_SYMBOLS)
        rules: dict[str, SymbolRules] = {}
        for name, value in raw.items():
            symbol = name.decode() if isinstance(name, bytes) else str(name)
            try:
                rules[symbol] = rules_from_json(value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("rules.undecodable", symbol=symbol, error=str(exc))
        self._rules = rules
        self._loaded_at = time.monotonic()

    async def get_many(self, symbols: set[str]) -> dict[str, SymbolRules | None]:
        age = time.monotonic() - self._loaded_at
        missing = any(s not in self._rules for s in symbols)
        if age > self.max_age_s or (missing and age > self.miss_interval_s):
            await self.refresh()
        return {s: self._rules.get(s) for s in symbols}

    def get(self, symbol: str) -> SymbolRules | None:
        return self._rules.get(symbol)
