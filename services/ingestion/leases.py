"""Shard leases: which ingestion instance writes which share of the subscriptions.

Owns ``ingestion:shard:{n}:lease`` (``keys.ingestion_shard_lease``): a string holding
the instance name, set with NX PX and renewed by its holder. An instance holds at
most ``max_shards`` shards (0: as many as it can get); a standby keeps trying, and
takes over a shard whose lease lapsed (its holder died), then backfills the gap
like any new subscription. A lease not renewed within its TTL is treated as lost
locally too, so a partitioned instance stops claiming shards it may no longer own
(the candle script's "only newer" rule makes an overlap harmless anyway).
"""

from __future__ import annotations

import time
from typing import Any

from shared import keys
from shared.logging import get_logger
from shared.redis import REDIS_ERRORS

log = get_logger(__name__)

# KEYS[1] lease; ARGV[1] owner, ARGV[2] ttl ms -> 1 renewed, 0 held by someone else
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] lease; ARGV[1] owner -> released only if ours
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ShardLeases:
    def __init__(
        self,
        redis: Any,
        instance: str,
        *,
        shards: int = 1,
        ttl_s: float = 5.0,
        max_shards: int = 0,
    ) -> None:
        self.redis = redis
        self.instance = instance
        self.shards = shards
        self.ttl_ms = int(ttl_s * 1000)
        self.max_shards = max_shards or shards
        self.held: set[int] = set()
        self._valid_until: dict[int, float] = {}
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self.takeovers = 0

    async def refresh(self) -> set[int]:
        """Renew held leases, acquire free ones; returns the shards held now."""
        now = time.monotonic()
        try:
            for shard in sorted(self.held):
                ok = await self._renew(
                    keys=[keys.ingestion_shard_lease(shard)], args=[self.instance, self.ttl_ms]
                )
                if ok:
                    self._valid_until[shard] = now + self.ttl_ms / 1000
                else:
                    log.warning("lease.lost", shard=shard)
                    self.held.discard(shard)
            for shard in range(self.shards):
                if len(self.held) >= self.max_shards:
                    break
                if shard in self.held:
                    continue
                got = await self.redis.set(
                    keys.ingestion_shard_lease(shard), self.instance, nx=True, px=self.ttl_ms
                )
                if got:
                    log.info("lease.acquired", shard=shard)
                    self.held.add(shard)
                    self.takeovers += 1
                    self._valid_until[shard] = now + self.ttl_ms / 1000
        except REDIS_ERRORS as exc:
            log.warning("lease.refresh_failed", error=str(exc))
        for shard in list(self.held):
            if time.monotonic() > self._valid_until.get(shard, 0):
                log.warning("lease.expired_locally", shard=shard)
                self.held.discard(shard)
        return set(self.held)

    async def release_all(self) -> None:
        for shard in sorted(self.held):
            try:
                await self._release(keys=[keys.ingestion_shard_lease(shard)], args=[self.instance])
            except REDIS_ERRORS:
                pass
        self.held.clear()
