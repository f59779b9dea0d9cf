"""The books writer and loader: one bot's records in Redis, read on claim and written
atomically per change through the fenced ``commit`` script (:mod:`.scripts`).

A :class:`~services.runner.core.Change` becomes one JSON payload: position and stats
hashes (written together, so BotBook's remembered intent ids never part from the state
they produced), round trips to ``bot:{id}:trades``, decisions to ``bot:{id}:log``
(capped), the pending intent, status fields and the intent itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from services.runner import scripts
from services.runner.core import DELETE, BotState, Change, Pending
from shared import keys
from shared.binance.rules import rules_from_json
from shared.strategies.accounting import BotBook
from shared.strategies.config import BotConfig

_QUOTES = ("USDT", "FDUSD", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "DAI")


class BotLoadError(ValueError):
    """A bot's records cannot be turned into a runnable bot (bad config or books)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def split_symbol(symbol: str) -> tuple[str, str]:
    """Base and quote asset by the usual quote suffixes (when exchange rules are missing)."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


@dataclass(slots=True)
class BotRecord:
    """What Redis holds about one bot, decoded."""

    fields: dict[str, str]
    position: dict[str, str]
    stats: dict[str, str]
    pending: dict[str, str]
    rules_json: bytes | None

    def config(self) -> BotConfig:
        raw = self.fields.get("config")
        if not raw:
            raise BotLoadError("bot has no config")
        try:
            return BotConfig.model_validate_json(raw)
        except ValueError as exc:
            raise BotLoadError(f"invalid config: {exc}") from exc

    def state(self, bot_id: str, epoch: int) -> BotState:
        config = self.config()
        base, quote = split_symbol(config.symbol)
        dust = Decimal(0)
        if self.rules_json:
            try:
                rules = rules_from_json(self.rules_json)
                base, quote = rules.base_asset, rules.quote_asset
                dust = rules.market_step_size or rules.step_size
            except (ValueError, msgspec.DecodeError):
                pass
        try:
            if self.stats:
                book = BotBook.from_hash({**self.position, **self.stats}, config.exit_plan())
            else:
                book = BotBook(
                    allocation=config.quote_allocation,
                    base_asset=base,
                    quote_asset=quote,
                    symbol=config.symbol,
                    dust_qty=dust,
                    exit_plan=config.exit_plan(),
                )
            pending = Pending.from_hash(self.pending) if self.pending else None
        except ValueError as exc:
            raise BotLoadError(str(exc)) from exc
        return BotState.create(
            bot_id,
            config,
            epoch,
            book,
            pending=pending,
            status=self.fields.get("status", ""),
            status_reason=self.fields.get("status_reason", ""),
            stale=self.fields.get("stale", ""),
            last_exit_at=int(self.stats.get("last_exit_at") or 0),
            last_open_time=int(self.stats.get("last_candle") or 0),
        )


class BotStore:
    def __init__(
        self, redis: Any, owner: str, *, log_maxlen: int = 1000, trades_maxlen: int = 10_000
    ) -> None:
        self.redis = redis
        self.owner = owner
        self.scripts = scripts.Scripts(redis)
        self.log_maxlen = log_maxlen
        self.trades_maxlen = trades_maxlen

    async def claim(self, bot_ids: list[str], lease_ms: int, now: int) -> list[tuple[int, str]]:
        """CLAIM each bot: (new epoch or 0 / -1 / -2, previous owner) per bot."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                await self.scripts.claim(
                    keys=[keys.bot_lease(bot_id), keys.bot(bot_id)],
                    args=[self.owner, lease_ms, now],
                    client=pipe,
                )
            return [(int(e), _text(p)) for e, p in await pipe.execute()]

    async def renew(self, held: list[tuple[str, int]], lease_ms: int) -> list[bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id, epoch in held:
                await self.scripts.renew(
                    keys=[keys.bot_lease(bot_id), keys.bot(bot_id)],
                    args=[self.owner, lease_ms, epoch],
                    client=pipe,
                )
            return [bool(int(r)) for r in await pipe.execute()]

    async def release(self, bot_ids: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                await self.scripts.release(
                    keys=[keys.bot_lease(bot_id), keys.bot(bot_id)], args=[self.owner], client=pipe
                )
            await pipe.execute()

    async def load(self, bot_ids: list[str]) -> list[BotRecord]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                pipe.hgetall(keys.bot(bot_id))
                pipe.hgetall(keys.bot_position(bot_id))
                pipe.hgetall(keys.bot_stats(bot_id))
                pipe.hgetall(keys.bot_pending(bot_id))
            raw = await pipe.execute()
        records = []
        for i in range(len(bot_ids)):
            f, p, s, q = (
                {_text(k): _text(v) for k, v in h.items()} for h in raw[4 * i : 4 * i + 4]
            )
            records.append(BotRecord(f, p, s, q, None))
        symbols = set()
        for rec in records:
            try:
                symbols.add(rec.config().symbol)
            except BotLoadError:
                continue
        if symbols:
            ordered = sorted(symbols)
            rules = await self.redis.hmget(keys.EXCHANGE_SYMBOLS, ordered)
            by_symbol = dict(zip(ordered, rules, strict=True))
            for rec in records:
                try:
                    rec.rules_json = by_symbol.get(rec.config().symbol)
                except BotLoadError:
                    continue
        return records

    def payload(self, state: BotState, change: Change) -> bytes:
        body: dict[str, Any] = {}
        if change.book:
            body["position"] = state.book.to_position_hash() if state.book.is_open else "del"
            stats = state.book.to_stats_hash()
            stats["last_exit_at"] = str(state.last_exit_at)
            stats["last_candle"] = str(state.last_open_time)
            body["stats"] = stats
        elif change.candle:
            body["stats"] = {"last_candle": str(state.last_open_time)}
        if change.trades:
            body["trades"] = [
                {k: str(v) for k, v in msgspec.to_builtins(t).items()} for t in change.trades
            ]
            body["trades_maxlen"] = self.trades_maxlen
        if change.log:
            body["log"] = change.log
            body["log_maxlen"] = self.log_maxlen
        if change.pending is DELETE:
            body["pending"] = "del"
        elif isinstance(change.pending, Pending):
            body["pending"] = change.pending.to_hash()
        if change.bot:
            body["bot"] = change.bot
        if change.intent is not None:
            body["intent"] = {
                "type": change.intent.TYPE,
                "data": scripts.intent_json(change.intent),
            }
        return msgspec.json.encode(body)

    async def commit(self, items: list[tuple[BotState, Change]]) -> list[bool]:
        """Write each change atomically (fenced); False where the lease or epoch was lost."""
        if not items:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for state, change in items:
                await self.scripts.commit(
                    keys=scripts.bot_keys(state.bot_id),
                    args=[self.owner, state.epoch, self.payload(state, change)],
                    client=pipe,
                )
            return [bool(int(r)) for r in await pipe.execute()]
