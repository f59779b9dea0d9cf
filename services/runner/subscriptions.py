"""The runner's part of ``market:subscriptions``: a ``SYMBOL:INTERVAL`` is added when
one of its bots first needs it, and withdrawn only when no bot anywhere needs it any
more (neither one of this runner's nor any bot whose desired state is running or whose
status is active: it may be held or about to be adopted elsewhere)."""

from __future__ import annotations

from typing import Any

import msgspec

from shared import keys
from shared.bots import BotStatus, Desired
from shared.logging import get_logger

log = get_logger(__name__)

_ACTIVE = (BotStatus.STARTING.value, BotStatus.RUNNING.value, BotStatus.STOPPING.value)


class _SeriesRef(msgspec.Struct):
    symbol: str = ""
    interval: str = ""


_ref_decoder = msgspec.json.Decoder(_SeriesRef)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def add(redis: Any, series: list[tuple[str, str]]) -> None:
    """SADD the series; PUBLISH on the change channel when one was new."""
    members = [keys.subscription(symbol, interval) for symbol, interval in series]
    if not members:
        return
    added = await redis.sadd(keys.MARKET_SUBSCRIPTIONS, *members)
    if added:
        await redis.publish(keys.MARKET_SUBSCRIPTIONS_CHANNEL, "runner")


async def withdraw(redis: Any, wanted: set[tuple[str, str]]) -> None:
    """SREM those of ``wanted`` (series this runner no longer uses) that no active bot
    of the fleet uses either."""
    if not wanted:
        return
    wanted = set(wanted)
    ids = [_text(b) for b in await redis.zrange(keys.BOTS, 0, -1)]
    for chunk in range(0, len(ids), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for bot_id in ids[chunk : chunk + 1000]:
                pipe.hmget(keys.bot(bot_id), "config", "desired", "status")
            rows = await pipe.execute()
        for config, desired, status in rows:
            if not config:
                continue
            active = (
                _text(desired or b"") == Desired.RUNNING.value or _text(status or b"") in _ACTIVE
            )
            if not active:
                continue
            try:
                ref = _ref_decoder.decode(config)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            wanted.discard((ref.symbol, ref.interval))
    if wanted:
        members = [keys.subscription(s, i) for s, i in sorted(wanted)]
        removed = await redis.srem(keys.MARKET_SUBSCRIPTIONS, *members)
        if removed:
            await redis.publish(keys.MARKET_SUBSCRIPTIONS_CHANNEL, "runner")
            log.info("subscriptions.removed", subscriptions=members)
