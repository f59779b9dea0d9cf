"""The runner's part of ``market:subscriptions`` and ``market:warmup``: a
``SYMBOL:INTERVAL`` is added when one of its bots first needs it, and withdrawn only when
no bot anywhere needs it any more (neither one of this runner's nor any bot whose desired
state is running or whose status is active: it may be held or about to be adopted
elsewhere). With it goes the series' warm-up demand (the most closed candles any bot
started on it declares, only ever raised while it is subscribed), which ingestion keeps
and backfills (services/ingestion/depth.py); :func:`depth` tells whether a series' list
is deep enough to seed a bot from.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared import keys
from shared.bots import BotStatus, Desired
from shared.logging import get_logger
from shared.strategies.registry import get_strategy_class

log = get_logger(__name__)

_ACTIVE = (BotStatus.STARTING.value, BotStatus.RUNNING.value, BotStatus.STOPPING.value)


class _SeriesRef(msgspec.Struct):
    symbol: str = ""
    interval: str = ""
    strategy: str = ""
    params: dict[str, Any] = {}

    def series(self) -> set[tuple[str, str]]:
        """The bot's series: its own, and those its strategy declares besides."""
        out = {(self.symbol, self.interval)}
        try:
            informative = get_strategy_class(self.strategy)(self.params).informative
        except (ValueError, TypeError):  # unknown strategy, invalid params: own series only
            return out
        return out | {(self.symbol, i) for i in informative}


_ref_decoder = msgspec.json.Decoder(_SeriesRef)

# HSET a field to ARGV[i+1] only when it is larger than what is there; 1 if any changed.
_RAISE = """
local changed = 0
for i = 1, #ARGV, 2 do
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') or 0
  if tonumber(ARGV[i + 1]) > have then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    changed = 1
  end
end
return changed
"""


class _OpenTime(msgspec.Struct):
    open_time: int


_open_time_decoder = msgspec.json.Decoder(_OpenTime)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def add(
    redis: Any, series: list[tuple[str, str]], warmup: dict[tuple[str, str], int] | None = None
) -> None:
    """SADD the series and raise their warm-up demand to ``warmup`` (closed candles per
    series); PUBLISH on the change channel when either changed."""
    members = [keys.subscription(symbol, interval) for symbol, interval in series]
    if not members:
        return
    added = await redis.sadd(keys.MARKET_SUBSCRIPTIONS, *members)
    if warmup:
        args: list[Any] = []
        for (symbol, interval), n in sorted(warmup.items()):
            args += [keys.subscription(symbol, interval), n]
        added += await redis.eval(_RAISE, 1, keys.MARKET_WARMUP, *args)
    if added:
        await redis.publish(keys.MARKET_SUBSCRIPTIONS_CHANNEL, "runner")


async def depth(redis: Any, series: list[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
    """Closed candles each series' list holds, or None when the list already starts at
    the exchange's first candle (``market:history-start``, by ingestion): as deep as it
    will ever be, so a bot needing more is seeded from all there is."""
    if not series:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for symbol, interval in series:
            pipe.llen(keys.candles(symbol, interval))
            pipe.lindex(keys.candles(symbol, interval), 0)
            pipe.hget(keys.MARKET_HISTORY_START, keys.subscription(symbol, interval))
        rows = await pipe.execute()
    out: dict[tuple[str, str], int | None] = {}
    for i, pair in enumerate(series):
        length, first, start = rows[3 * i : 3 * i + 3]
        out[pair] = int(length)
        if first is not None and start is not None:
            try:
                if _open_time_decoder.decode(first).open_time <= int(start):
                    out[pair] = None
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
                pass
    return out


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
            if (ref.symbol, ref.interval) in wanted:
                wanted.discard((ref.symbol, ref.interval))
            if any(symbol == ref.symbol for symbol, _ in wanted):
                wanted -= ref.series()
    if wanted:
        members = [keys.subscription(s, i) for s, i in sorted(wanted)]
        removed = await redis.srem(keys.MARKET_SUBSCRIPTIONS, *members)
        await redis.hdel(keys.MARKET_WARMUP, *members)
        if removed:
            await redis.publish(keys.MARKET_SUBSCRIPTIONS_CHANNEL, "runner")
            log.info("subscriptions.removed", subscriptions=members)
