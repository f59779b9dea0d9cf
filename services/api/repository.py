"""Every Redis read and write of the API, in one place.

The API writes only what it owns (DESIGN "Redis contract"): ``bot:{id}`` fields
``config``, ``desired``, ``status`` (on create), ``created_at``, ``updated_at``; the
``bots`` sorted set; ``stream:bot-commands``; ``risk:limits`` and ``risk:halt``. State
changes that depend on the bot's current state run under WATCH/MULTI with a pure check
from :mod:`services.api.lifecycle`, so a concurrent start cannot slip between a check
and a delete. Everything else is read as strings and handed back untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.exceptions import ResponseError, WatchError

from services.api.errors import Conflict, NotFound
from services.api.lifecycle import BotState
from shared import keys
from shared.bots import BotField, BotStatus, Desired
from shared.exchange_clock import ExchangeClock, read_exchange_clock
from shared.messages import (
    BotCommand,
    Candle,
    CommandAction,
    Event,
    ExecutionReport,
    MessageDecodeError,
    decode,
    encode,
)
from shared.money import units_text
from shared.redis import Redis, heartbeats, now_ms
from shared.streams import EVENTS_MAXLEN

COMMANDS_MAXLEN = 10_000
# One bot's record in one command (its four keys share the bot's hash tag): the hash,
# position, stats (HGETALL each) and whether its lease exists.
READ_BOT = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),
        redis.call('HGETALL', KEYS[3]), redis.call('EXISTS', KEYS[4])}
"""
# The runner's ``bot:{id}:stats`` fields /metrics exposes per bot.
STAT_FIELDS = (
    "symbol",
    "realized_pnl",
    "unrealized_pnl",
    "equity",
    "fees",
    "trades",
    "fills",
    "rejections",
    "mark_price",
)
_WATCH_RETRIES = 20
_candle_decoder = msgspec.json.Decoder(Candle)


def fold_name(name: str) -> str:
    """The form a bot name is unique in: "RSI on BTC " and "rsi on btc" are one name."""
    return name.strip().casefold()


def config_name(config_json: str) -> str:
    try:
        config = json.loads(config_json)
    except ValueError:
        return ""
    return str(config.get("name", "")) if isinstance(config, dict) else ""


def text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def text_map(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def column(key_of: Callable[[str], str], field: str) -> str:
    """The SORT GET pattern of ``field`` in the hash ``key_of(id)`` (e.g. ``keys.bot``)."""
    return f"{key_of('*')}->{field}"


def _pairs(flat: list[Any]) -> dict[str, str]:
    """A Lua HGETALL reply (field, value, field, value, ...) as strings."""
    it = iter(flat)
    return {text(k): text(v) for k, v in zip(it, it, strict=True)}


@dataclass(slots=True)
class BotRecord:
    """One bot as stored: its hash, position and stats, all strings."""

    bot_id: str
    fields: dict[str, str]
    position: dict[str, str] = field(default_factory=dict)
    stats: dict[str, str] = field(default_factory=dict)
    leased: bool = False

    @property
    def state(self) -> BotState:
        return BotState(
            desired=self.fields.get(BotField.DESIRED, Desired.STOPPED.value),
            status=self.fields.get(BotField.STATUS, BotStatus.STOPPED.value),
            leased=self.leased,
        )


@dataclass(slots=True)
class HealthSnapshot:
    """What the health report reads besides heartbeats (two round trips)."""

    last_update: dict[str, str]
    halt: str | None
    clock: ExchangeClock | None
    stale_bots: list[tuple[str, dict[str, str]]]  # bots the runners hold stale


@dataclass(slots=True)
class StreamEntry:
    entry_id: str
    fields: dict[str, str]


class Repository:
    def __init__(self, redis: Redis) -> None:
        # redis-py's stubs type every command as sync-or-async; Any keeps await honest.
        self.redis: Any = redis
        # EVALSHA, loaded again by redis-py after a NOSCRIPT (a restarted Redis)
        self._read_bot: Any = self.redis.register_script(READ_BOT)

    async def ping(self) -> float:
        """Round trip in milliseconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self.redis.ping()
        return (loop.time() - start) * 1000

    # --- bots --------------------------------------------------------------------------
    async def create_bot(self, bot_id: str, name: str, config_json: str, created_at: int) -> None:
        """Reserve the bot's name (folded) in ``bot-names`` with HSETNX, then create the
        bot in one MULTI: two creations with one name cannot both win, and creations of
        different names never contend (no WATCH of the whole index). A creation that
        fails after its reservation gives the name back."""
        folded = fold_name(name)
        if not await self.redis.hsetnx(keys.BOT_NAMES, folded, bot_id):
            taken = await self.redis.hget(keys.BOT_NAMES, folded)
            raise Conflict(
                f"a bot named {name!r} exists already ({text(taken or b'')})", field="name"
            )
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                self._queue_create(pipe, bot_id, config_json, created_at)
                await pipe.execute()
        except BaseException:
            with contextlib.suppress(Exception):
                if text(await self.redis.hget(keys.BOT_NAMES, folded) or b"") == bot_id:
                    await self.redis.hdel(keys.BOT_NAMES, folded)
            raise

    async def index_names(self) -> int:
        """Reserve the names of bots created before ``bot-names`` existed (first come,
        first kept: HSETNX never takes a name from another bot). Each under WATCH of the
        bot's hash, so a bot deleted meanwhile leaves no name behind. Returns how many."""
        ids = await self.bot_ids()
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in ids:
                pipe.hget(keys.bot(bot_id), BotField.CONFIG)
            configs = await pipe.execute()
        owners = {text(v) for v in (await self.redis.hgetall(keys.BOT_NAMES)).values()}
        added = 0
        for bot_id, raw in zip(ids, configs, strict=True):
            folded = fold_name(config_name(text(raw))) if raw is not None else ""
            if not folded or bot_id in owners:
                continue
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(keys.bot(bot_id))
                    if not await pipe.exists(keys.bot(bot_id)):
                        continue
                    pipe.multi()
                    pipe.hsetnx(keys.BOT_NAMES, folded, bot_id)
                    added += sum(await pipe.execute())
                except WatchError:
                    continue  # changed or deleted meanwhile: a later start indexes it
        return added

    @staticmethod
    def _queue_create(pipe: Any, bot_id: str, config_json: str, created_at: int) -> None:
        pipe.hset(
            keys.bot(bot_id),
            mapping={
                BotField.CONFIG: config_json,
                BotField.DESIRED: Desired.STOPPED.value,
                BotField.STATUS: BotStatus.STOPPED.value,
                BotField.CREATED_AT: str(created_at),
                BotField.UPDATED_AT: str(created_at),
            },
        )
        pipe.zadd(keys.BOTS, {bot_id: created_at})

    async def count_bots(self) -> int:
        return int(await self.redis.zcard(keys.BOTS))

    async def bot_ids(self, offset: int = 0, limit: int | None = None) -> list[str]:
        end = -1 if limit is None else offset + limit - 1
        return [text(i) for i in await self.redis.zrange(keys.BOTS, offset, end)]

    async def bot_columns(self, patterns: list[str]) -> list[list[str | None]]:
        """Every bot, in creation order, as ``[id, value of each pattern...]`` in ONE
        command: ``SORT_RO bots BY nosort GET # GET <pattern>...``, a pattern being a key
        pattern with ``*`` for the id and ``->field`` for a hash field (e.g.
        ``bot:{*}->status``, :func:`column`). A vanished bot's values are None."""
        args: list[str] = ["GET", "#"]
        for pattern in patterns:
            args += ["GET", pattern]
        raw = await self.redis.execute_command("SORT_RO", keys.BOTS, "BY", "nosort", *args)
        width = len(patterns) + 1
        return [
            [None if v is None else text(v) for v in raw[i : i + width]]
            for i in range(0, len(raw), width)
        ]

    async def bot_ids_desc(self, offset: int, limit: int) -> list[str]:
        """Newest first."""
        return [text(i) for i in await self.redis.zrevrange(keys.BOTS, offset, offset + limit - 1)]

    async def bot_hashes(self, bot_ids: list[str]) -> list[dict[str, str]]:
        """The ``bot:{id}`` hashes of ``bot_ids`` (empty dict for a vanished bot)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                pipe.hgetall(keys.bot(bot_id))
            return [text_map(r) for r in await pipe.execute()]

    async def bots(self, bot_ids: list[str]) -> list[BotRecord]:
        """Full records (hash, position, stats, lease) of ``bot_ids`` that still exist."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                pipe.hgetall(keys.bot(bot_id))
                pipe.hgetall(keys.bot_position(bot_id))
                pipe.hgetall(keys.bot_stats(bot_id))
                pipe.exists(keys.bot_lease(bot_id))
            raw = await pipe.execute()
        records = []
        for i, bot_id in enumerate(bot_ids):
            fields, position, stats, leased = raw[4 * i : 4 * i + 4]
            if fields:
                records.append(
                    BotRecord(
                        bot_id, text_map(fields), text_map(position), text_map(stats), bool(leased)
                    )
                )
        return records

    async def bot(self, bot_id: str) -> BotRecord:
        """One bot from one command (:data:`READ_BOT`); 404 when it does not exist."""
        fields, position, stats, leased = await self._read_bot(
            keys=[
                keys.bot(bot_id),
                keys.bot_position(bot_id),
                keys.bot_stats(bot_id),
                keys.bot_lease(bot_id),
            ]
        )
        if not fields:
            raise NotFound(f"no bot {bot_id}", field="bot_id")
        return BotRecord(bot_id, _pairs(fields), _pairs(position), _pairs(stats), bool(leased))

    async def _transact(
        self,
        bot_id: str,
        check: Callable[[BotRecord], None],
        write: Callable[[Any, BotRecord], None],
        read_names: Callable[[Any], Awaitable[None]] | None = None,
    ) -> BotRecord:
        """Read the bot under WATCH, ``check`` it (may raise), queue ``write`` in MULTI.
        With ``read_names`` the name index is watched too and read (may raise) first."""
        bot_key, lease_key = keys.bot(bot_id), keys.bot_lease(bot_id)
        watched = [bot_key, lease_key] + ([keys.BOT_NAMES] if read_names else [])
        for _ in range(_WATCH_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*watched)
                    if read_names is not None:
                        await read_names(pipe)
                    fields = text_map(await pipe.hgetall(bot_key))
                    if not fields:
                        raise NotFound(f"no bot {bot_id}", field="bot_id")
                    record = BotRecord(bot_id, fields, leased=bool(await pipe.exists(lease_key)))
                    check(record)
                    pipe.multi()
                    write(pipe, record)
                    await pipe.execute()
                    return record
                except WatchError:
                    await asyncio.sleep(0.005)
        raise Conflict("the bot kept changing while this request was applied: retry")

    async def set_desired(self, bot_id: str, desired: Desired, command: BotCommand) -> BotRecord:
        def write(pipe: Any, _: BotRecord) -> None:
            pipe.hset(
                keys.bot(bot_id),
                mapping={
                    BotField.DESIRED: desired.value,
                    BotField.UPDATED_AT: str(command.issued_at),
                },
            )
            pipe.xadd(keys.BOT_COMMANDS, encode(command), maxlen=COMMANDS_MAXLEN, approximate=True)

        record = await self._transact(bot_id, lambda _: None, write)
        record.fields[BotField.DESIRED] = desired.value
        return record

    async def name_owner(self, name: str) -> str | None:
        raw = await self.redis.hget(keys.BOT_NAMES, fold_name(name))
        return None if raw is None else text(raw)

    async def update_config(
        self,
        bot_id: str,
        check: Callable[[BotRecord], None],
        config_json: Callable[[BotRecord], str],
        command: BotCommand,
        *,
        old_name: str,
        new_name: str,
    ) -> None:
        old, new = fold_name(old_name), fold_name(new_name)

        async def check_name(pipe: Any) -> None:
            if old != new:
                taken = await pipe.hget(keys.BOT_NAMES, new)
                if taken is not None and text(taken) != bot_id:
                    raise Conflict(
                        f"a bot named {new_name!r} exists already ({text(taken)})", field="name"
                    )

        def write(pipe: Any, record: BotRecord) -> None:
            if old != new:
                pipe.hdel(keys.BOT_NAMES, old)
                pipe.hset(keys.BOT_NAMES, new, bot_id)
            pipe.hset(
                keys.bot(bot_id),
                mapping={
                    BotField.CONFIG: config_json(record),
                    BotField.UPDATED_AT: str(command.issued_at),
                },
            )
            pipe.xadd(keys.BOT_COMMANDS, encode(command), maxlen=COMMANDS_MAXLEN, approximate=True)

        await self._transact(bot_id, check, write, check_name)

    async def delete_bot(
        self, bot_id: str, check: Callable[[BotRecord], None], command: BotCommand
    ) -> None:
        owned_name: list[str] = []

        async def own_name(pipe: Any) -> None:
            fields = text_map(await pipe.hgetall(keys.bot(bot_id)))
            folded = fold_name(config_name(fields.get(BotField.CONFIG, "")))
            owner = await pipe.hget(keys.BOT_NAMES, folded)
            if owner is not None and text(owner) == bot_id:
                owned_name.append(folded)

        def write(pipe: Any, _: BotRecord) -> None:
            if owned_name:
                pipe.hdel(keys.BOT_NAMES, owned_name[-1])
            pipe.delete(
                keys.bot(bot_id),
                keys.bot_position(bot_id),
                keys.bot_stats(bot_id),
                keys.bot_trades(bot_id),
                keys.bot_log(bot_id),
                keys.bot_pending(bot_id),
            )
            pipe.zrem(keys.BOTS, bot_id)
            pipe.xadd(keys.BOT_COMMANDS, encode(command), maxlen=COMMANDS_MAXLEN, approximate=True)

        await self._transact(bot_id, check, write, own_name)

    async def bot_status(self, bot_id: str) -> str | None:
        raw = await self.redis.hget(keys.bot(bot_id), BotField.STATUS)
        return None if raw is None else text(raw)

    async def stream_tail(self, stream: str, limit: int) -> list[StreamEntry]:
        """The last ``limit`` entries of a stream, newest first."""
        raw = await self.redis.xrevrange(stream, count=limit)
        return [StreamEntry(text(i), text_map(f)) for i, f in raw]

    # --- executions and orders ------------------------------------------------------------
    async def executions(
        self, bot_id: str | None, limit: int, scan_max: int = 20_000
    ) -> list[tuple[str, ExecutionReport]]:
        """Newest execution reports (of one bot if given), scanning at most ``scan_max``."""
        found: list[tuple[str, ExecutionReport]] = []
        end, scanned, batch = "+", 0, 500
        while len(found) < limit and scanned < scan_max:
            raw = await self.redis.xrevrange(keys.EXECUTIONS, max=end, count=batch)
            if not raw:
                break
            for entry_id, fields in raw:
                scanned += 1
                try:
                    report = decode(fields)
                except MessageDecodeError:
                    continue  # dead-lettering belongs to the consumers of the stream
                if isinstance(report, ExecutionReport) and (
                    bot_id is None or report.bot_id == bot_id
                ):
                    found.append((text(entry_id), report))
                    if len(found) >= limit:
                        break
            last = text(raw[-1][0])
            ms, _, seq = last.partition("-")
            end = f"{ms}-{int(seq) - 1}" if int(seq) > 0 else f"{int(ms) - 1}"
            if len(raw) < batch:
                break
        return found

    async def order(self, client_order_id: str) -> dict[str, str]:
        return text_map(await self.redis.hgetall(keys.order(client_order_id)))

    async def balances(self, mode: str) -> dict[str, str]:
        """Asset field -> decimal string. Paper balances are kept in integer units of 1e-8
        (the gateway's scripts add them exactly, shared/money.py); live ones as the venue
        sends them."""
        found = text_map(await self.redis.hgetall(keys.balances(mode)))
        if mode == "paper":
            return {field: units_text(value) for field, value in found.items()}
        return found

    # --- market ----------------------------------------------------------------------------
    async def symbol_rules_json(self, symbol: str) -> str | None:
        raw = await self.redis.hget(keys.EXCHANGE_SYMBOLS, symbol)
        return None if raw is None else text(raw)

    async def all_symbol_rules(self) -> dict[str, str]:
        return text_map(await self.redis.hgetall(keys.EXCHANGE_SYMBOLS))

    async def price(self, symbol: str) -> str | None:
        raw = await self.redis.get(keys.price(symbol))
        return None if raw is None else text(raw)

    async def prices(self, symbols: Iterable[str]) -> dict[str, str]:
        names = list(symbols)
        if not names:
            return {}
        raw = await self.redis.mget([keys.price(s) for s in names])
        return {s: text(v) for s, v in zip(names, raw, strict=True) if v is not None}

    async def candles(self, symbol: str, interval: str, limit: int) -> list[Candle]:
        raw = await self.redis.lrange(keys.candles(symbol, interval), -limit, -1)
        out = []
        for item in raw:
            try:
                out.append(_candle_decoder.decode(item))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return out

    async def market_last_update(self) -> dict[str, str]:
        return text_map(await self.redis.hgetall(keys.MARKET_LAST_UPDATE))

    async def exchange_clock(self) -> ExchangeClock | None:
        return await read_exchange_clock(self.redis)

    # --- risk ----------------------------------------------------------------------------
    async def risk_limits(self) -> dict[str, str]:
        return text_map(await self.redis.hgetall(keys.RISK_LIMITS))

    async def replace_risk_limits(self, fields: dict[str, str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.RISK_LIMITS)
            if fields:
                pipe.hset(keys.RISK_LIMITS, mapping=fields)
            await pipe.execute()

    async def halt_reason(self) -> str | None:
        raw = await self.redis.get(keys.RISK_HALT)
        return None if raw is None else text(raw)

    async def set_halt(self, reason: str | None, event: Event) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            if reason is None:
                pipe.delete(keys.RISK_HALT)
            else:
                pipe.set(keys.RISK_HALT, reason)
            pipe.xadd(keys.EVENTS, encode(event), maxlen=EVENTS_MAXLEN, approximate=True)
            await pipe.execute()

    # --- health and metrics --------------------------------------------------------------
    async def heartbeats(self, service: str = "*") -> list[dict[str, str]]:
        return await heartbeats(self.redis, service)

    async def stream_info(self, stream: str) -> dict[str, int]:
        """``length`` and ``entries_added`` of a stream (zeros when it does not exist)."""
        try:
            info = await self.redis.xinfo_stream(stream)
        except ResponseError:
            return {"length": 0, "entries_added": 0}
        return {
            "length": int(info.get("length", 0)),
            "entries_added": int(info.get("entries-added", info.get("length", 0))),
        }

    async def group_lag(self, stream: str, group: str) -> dict[str, int] | None:
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return None
        for g in groups:
            if text(g.get("name", b"")) == group:
                lag = g.get("lag")
                return {
                    "pending": int(g.get("pending", 0)),
                    "lag": int(lag) if lag is not None else -1,
                }
        return None

    async def health_snapshot(self) -> HealthSnapshot:
        """Market update times, halt, exchange clock and bot ids in one round trip, then
        each bot's ``stale`` and ``status_reason`` in a second."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.MARKET_LAST_UPDATE)
            pipe.get(keys.RISK_HALT)
            pipe.hgetall(keys.MARKET_CLOCK)
            pipe.zrange(keys.BOTS, 0, -1)
            last_update, halt, clock, ids = await pipe.execute()
        bot_ids = [text(i) for i in ids]
        stale: list[tuple[str, dict[str, str]]] = []
        if bot_ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for bot_id in bot_ids:
                    pipe.hmget(keys.bot(bot_id), BotField.STALE, BotField.STATUS_REASON)
                for bot_id, (symbols, reason) in zip(bot_ids, await pipe.execute(), strict=True):
                    if symbols:
                        stale.append(
                            (
                                bot_id,
                                {
                                    BotField.STALE: text(symbols),
                                    BotField.STATUS_REASON: text(reason or ""),
                                },
                            )
                        )
        return HealthSnapshot(
            last_update=text_map(last_update),
            halt=None if halt is None else text(halt),
            clock=ExchangeClock.from_fields(clock),
            stale_bots=stale,
        )

    async def bot_figures(self) -> list[tuple[str, str, dict[str, str], str]]:
        """Every bot's (id, status, stats fields of :data:`STAT_FIELDS`, position qty),
        for ``/metrics``: the ids, then one pipeline of three commands a bot."""
        ids = await self.bot_ids()
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in ids:
                pipe.hget(keys.bot(bot_id), BotField.STATUS)
                pipe.hmget(keys.bot_stats(bot_id), STAT_FIELDS)
                pipe.hget(keys.bot_position(bot_id), "qty")
            raw = await pipe.execute()
        out = []
        for i, bot_id in enumerate(ids):
            status, stats, qty = raw[3 * i : 3 * i + 3]
            if status is None:
                continue  # deleted meanwhile
            fields = {k: text(v) for k, v in zip(STAT_FIELDS, stats, strict=True) if v is not None}
            out.append((bot_id, text(status), fields, text(qty) if qty is not None else ""))
        return out

    async def statuses(self) -> list[str]:
        ids = await self.bot_ids()
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for bot_id in ids:
                pipe.hget(keys.bot(bot_id), BotField.STATUS)
            return [text(s) for s in await pipe.execute() if s is not None]


async def gather_dict(items: dict[str, Awaitable[Any]]) -> dict[str, Any]:
    values = await asyncio.gather(*items.values())
    return dict(zip(items.keys(), values, strict=True))


def command(bot_id: str, action: CommandAction, command_id: str) -> BotCommand:
    return BotCommand(command_id=command_id, bot_id=bot_id, action=action, issued_at=now_ms())
