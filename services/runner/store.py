"""The books writer and loader: bots' records in Redis, read on claim and written
atomically per bot through the fenced scripts of :mod:`.scripts`, a chunk of bots per
call.

A :class:`~services.runner.core.Change` becomes the bot's part of one COMMIT call (its
operations as one MessagePack array, :meth:`BotStore.operations`): position and stats
hashes (written together, so BotBook's remembered intent ids never part from the state
they produced), round trips to ``bot:{id}:trades``, decisions to ``bot:{id}:log``
(capped), the pending intent, status fields and the intent itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from typing import Any, TypeVar

import msgspec

from services.runner import scripts
from services.runner.core import (
    DELETE,
    PENDING_FIELDS,
    UNRESOLVED_FIELDS,
    UNRESOLVED_PREFIX,
    BotState,
    Change,
    Pending,
)
from shared import keys
from shared.binance.rules import rules_from_json
from shared.messages import encode_json
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
    store: BotStore | None = None  # parses configs through its cache

    def config(self) -> BotConfig:
        raw = self.fields.get("config")
        if not raw:
            raise BotLoadError("bot has no config")
        if self.store is not None:
            return self.store.parse_config(raw)
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
            unresolved = (
                Pending.from_hash(self.pending, UNRESOLVED_PREFIX) if self.pending else None
            )
        except ValueError as exc:
            raise BotLoadError(str(exc)) from exc
        return BotState.create(
            bot_id,
            config,
            epoch,
            book,
            pending=pending,
            unresolved=unresolved,
            status=self.fields.get("status", ""),
            status_reason=self.fields.get("status_reason", ""),
            stale=self.fields.get("stale", ""),
            last_exit_at=int(self.stats.get("last_exit_at") or 0),
            last_open_time=int(self.stats.get("last_candle") or 0),
            config_digest=scripts.config_digest(self.fields.get("config", "")),
        )


class BotStore:
    """Every runner write and read of bots' records, a chunk of bots per script call."""

    def __init__(
        self, redis: Any, owner: str, *, log_maxlen: int = 1000, trades_maxlen: int = 10_000
    ) -> None:
        self.redis = redis
        self.owner = owner
        self.scripts = scripts.Scripts(redis)
        self.lanes = self.scripts.lanes  # the runner's own connections (its XREAD too)
        self.log_maxlen = log_maxlen
        self.trades_maxlen = trades_maxlen
        self._keys: dict[str, tuple[bytes, ...]] = {}
        self._configs: dict[str, BotConfig] = {}

    async def close(self) -> None:
        """Close the connections the scripts were called on."""
        await self.scripts.close()

    def keys_of(self, bot_id: str) -> tuple[bytes, ...]:
        """The bot's seven commit keys (lease, bot, position, stats, trades, log,
        pending), built and encoded once per bot id."""
        found = self._keys.get(bot_id)
        if found is None:
            if len(self._keys) > _KEY_CACHE:
                self._keys.clear()
            found = self._keys[bot_id] = tuple(k.encode() for k in scripts.commit_keys(bot_id))
        return found

    def parse_config(self, raw: str) -> BotConfig:
        """A stored config, validated once per distinct text (BotConfig is frozen)."""
        config = self._configs.get(raw)
        if config is None:
            try:
                config = BotConfig.model_validate_json(raw)
            except ValueError as exc:
                raise BotLoadError(f"invalid config: {exc}") from exc
            if len(self._configs) > _CONFIG_CACHE:
                self._configs.clear()
            self._configs[raw] = config
        return config

    async def claim(self, bot_ids: list[str], lease_ms: int, now: int) -> list[tuple[int, str]]:
        """CLAIM each bot: (new epoch or 0 / -1 / -2, previous owner) per bot."""
        out: list[tuple[int, str]] = []
        for part in _chunks(bot_ids, CHUNK):
            flat = [k for b in part for k in self.keys_of(b)[:2]]
            reply = await self.scripts.claim(flat, [self.owner, lease_ms, now])
            out.extend((int(reply[i]), _text(reply[i + 1])) for i in range(0, len(reply), 2))
        return out

    async def renew(
        self, held: list[tuple[str, int]], lease_ms: int, pause: Pause | None = None
    ) -> list[bool]:
        out: list[bool] = []
        for part in _chunks(held, RENEW_CHUNK):
            if pause is not None:
                await pause()
            flat = [k for b, _ in part for k in self.keys_of(b)[:2]]
            reply = await self.scripts.renew(flat, [self.owner, lease_ms, *(e for _, e in part)])
            out.extend(bool(int(r)) for r in reply)
        return out

    async def release(self, bot_ids: list[str]) -> None:
        for part in _chunks(bot_ids, CHUNK):
            await self.scripts.release([k for b in part for k in self.keys_of(b)[:2]], [self.owner])
        self.forget(bot_ids)

    def forget(self, bot_ids: list[str]) -> None:
        """Drop cached key names of bots let go."""
        for bot_id in bot_ids:
            self._keys.pop(bot_id, None)

    async def load(self, bot_ids: list[str]) -> list[BotRecord]:
        records = []
        for part in _chunks(bot_ids, CHUNK):
            flat: list[bytes] = []
            for bot_id in part:
                k = self.keys_of(bot_id)
                flat.extend((k[1], k[2], k[3], k[6]))
            raw = await self.scripts.load(flat, [])
            for i in range(len(part)):
                f, p, s, q = (_pairs(h) for h in raw[4 * i : 4 * i + 4])
                records.append(BotRecord(f, p, s, q, None, self))
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

    async def reconcile(
        self, bot_ids: list[str], held: dict[str, str], pause: Pause | None = None
    ) -> list[tuple[str, str]]:
        """(bot id, "stop" | "config" | "claim") for each bot of ``bot_ids`` that needs
        something; ``held`` maps the bots this runner holds to their config digests.
        ``pause`` is awaited before each chunk (background passes step aside)."""
        out: list[tuple[str, str]] = []
        for part in _chunks(bot_ids, RECONCILE_CHUNK):
            if pause is not None:
                await pause()
            flat: list[bytes] = []
            for bot_id in part:
                k = self.keys_of(bot_id)
                flat.extend((k[1], k[0]))
            reply = await self.scripts.reconcile(
                flat, [self.owner, *(held.get(b, "") for b in part)]
            )
            out.extend(
                (part[int(reply[i]) - 1], _text(reply[i + 1])) for i in range(0, len(reply), 2)
            )
        return out

    def operations(self, state: BotState, change: Change) -> list[str]:
        """The bot's part of a :data:`~services.runner.scripts.COMMIT` call: its
        operations as ``tag, count, values`` (see the script)."""
        ops: list[str] = []
        if change.epoch_from:  # first: the intent below carries the new epoch
            ops += ("E", "1", str(state.epoch))
        intent = change.intent
        if intent is not None:
            # str, not bytes: Redis' cmsgpack predates MessagePack's bin type
            ops += ("I", "2", intent.TYPE, encode_json(intent).decode())
        if change.book:
            if state.book.is_open:
                _put(ops, "P", state.book.to_position_hash())
            else:
                ops += ("P", "0")
            stats = state.book.to_stats_hash()
            stats["last_exit_at"] = str(state.last_exit_at)
            stats["last_candle"] = str(state.last_open_time)
            _put(ops, "S", stats)
        elif change.candle:
            ops += ("S", "2", "last_candle", str(state.last_open_time))
        for trip in change.trades:
            _put(ops, "T", {k: str(v) for k, v in msgspec.to_builtins(trip).items()})
        for entry in change.log:
            _put(ops, "L", entry)
        whole = False  # the pending hash deleted as a whole
        if change.pending is DELETE:
            if state.unresolved is None:
                ops += ("Q", "0")
                whole = True
            else:  # the unresolved intent stays recorded
                ops += ("D", str(len(PENDING_FIELDS)), *PENDING_FIELDS)
        elif isinstance(change.pending, Pending):
            if change.pending.intent is intent:  # the script copies the intent's data
                _put(ops, "q", change.pending.to_hash(with_intent=False))
            else:
                _put(ops, "Q", change.pending.to_hash())
        if change.unresolved is DELETE:
            if not whole:
                ops += ("D", str(len(UNRESOLVED_FIELDS)), *UNRESOLVED_FIELDS)
        elif isinstance(change.unresolved, Pending):
            _put(ops, "Q", change.unresolved.to_hash(prefix=UNRESOLVED_PREFIX))
        for again in change.resent:
            ops += ("J", "2", again.TYPE, encode_json(again).decode())
        if change.bot:
            _put(ops, "B", change.bot)
        if change.release:
            ops += ("R", "0")
        return ops

    def encode(self, items: list[tuple[BotState, Change]]) -> tuple[list[bytes], list[Any]]:
        """KEYS and ARGV of one COMMIT call for ``items`` (distinct bots)."""
        flat: list[bytes] = [_INTENTS]
        args: list[Any] = [self.owner, self.log_maxlen, self.trades_maxlen]
        for state, change in items:
            flat.extend(self.keys_of(state.bot_id))
            args.append(change.epoch_from or state.epoch)  # the epoch the commit is fenced on
            args.append(_msgpack(self.operations(state, change)))
        return flat, args

    async def send(
        self, encoded: tuple[list[bytes], list[Any]], written: asyncio.Event | None = None
    ) -> list[bool]:
        """One COMMIT call: per bot True, or False where the lease or epoch was lost.
        With ``written``, that event is set once the request has left."""
        return [bool(r) for r in await self.scripts.commit(*encoded, written)]

    async def commit(self, items: list[tuple[BotState, Change]]) -> list[bool]:
        """Write each change atomically (fenced); False where the lease or epoch was lost."""
        out: list[bool] = []
        for part in _chunks(items, CHUNK):
            out.extend(await self.send(self.encode(part)))
        return out

    async def decided(self, groups: list[Decided]) -> list[bool]:
        """Each group's same decision on one candle for every bot of it (a HOLD of
        their shared computation): ``last_candle`` and, when given, one log entry each.
        Per bot of ``groups`` in order: True, or False where the lease or epoch was lost.

        A few hundred bots per call, up to :data:`DECIDED_IN_FLIGHT` calls at once: at
        a candle close most of 10,000 bots hold, in a thousand groups, and a call (a
        round trip) per group kept the runner from reading for ~200 ms."""
        calls: list[tuple[list[bytes], list[Any]]] = []
        flat: list[bytes] = []
        args: list[Any] = [self.owner, self.log_maxlen]
        for last_candle, entry, states in groups:
            pairs = [x for kv in (entry or {}).items() for x in kv]
            for part in _chunks(states, CHUNK):
                if len(flat) + 4 * len(part) > 4 * CHUNK:
                    calls.append((flat, args))
                    flat, args = [], [self.owner, self.log_maxlen]
                args += (last_candle, len(part), len(pairs) // 2, *pairs)
                for state in part:
                    k = self.keys_of(state.bot_id)
                    flat.extend((k[0], k[1], k[3], k[5]))
                    args.append(state.epoch)
        if flat:
            calls.append((flat, args))
        limit = asyncio.Semaphore(DECIDED_IN_FLIGHT)

        async def call(keys_: list[bytes], argv: list[Any]) -> list[Any]:
            async with limit:
                return list(await self.scripts.decided(keys_, argv))

        replies = await asyncio.gather(*(call(*c) for c in calls))
        return [bool(r) for reply in replies for r in reply]


_msgpack = msgspec.msgpack.Encoder().encode
_KEY_CACHE = 200_000
DECIDED_IN_FLIGHT = 4
_CONFIG_CACHE = 50_000
CHUNK = 500  # bots per script call
RENEW_CHUNK = 500
RECONCILE_CHUNK = 500
_INTENTS = keys.ORDER_INTENTS.encode()

T = TypeVar("T")
Pause = Callable[[], Awaitable[None]]
# One group's HOLD: the candle's open time, the log entry (None: no entry), its bots.
Decided = tuple[int, dict[str, str] | None, list[BotState]]


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _put(ops: list[str], tag: str, fields: dict[str, str]) -> None:
    ops.append(tag)
    ops.append(str(2 * len(fields)))
    ops.extend(chain.from_iterable(fields.items()))


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
