"""The API's use cases: what each route does, between HTTP and the repository.

Handlers parse and answer; this module decides (validation against the exchange's
symbols, the lifecycle rules, waiting for a transition, summaries and health), and
the repository reads and writes.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from services.api import lifecycle
from services.api.errors import BadRequest, InvalidInput, NotFound, Unavailable
from services.api.health import assess_health, probe_exchange
from services.api.ids import new_id
from services.api.listing import Query
from services.api.models import (
    Bot,
    BotPage,
    CommandAccepted,
    Health,
    Summary,
)
from services.api.repository import BotRecord, Repository, command
from shared.binance.rules import rules_from_json
from shared.bots import BotField, BotStatus, Desired
from shared.health import judge
from shared.messages import CommandAction
from shared.redis import now_ms
from shared.strategies.config import BotConfig

ZERO = Decimal(0)
# Finer than any Binance quote asset's precision (USDT: 8) is a typo, not an amount.
QUOTE_MAX_DECIMALS = 8


def config_json(config: BotConfig) -> str:
    return config.model_dump_json()


async def check_symbol(repo: Repository, symbol: str) -> None:
    raw = await repo.symbol_rules_json(symbol)
    if raw is None:
        raise InvalidInput(f"symbol {symbol} is not listed in exchange:symbols", field="symbol")
    try:
        rules = rules_from_json(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(
            f"trading rules of {symbol} are unreadable: {exc}", field="symbol"
        ) from None
    if not rules.is_trading or not rules.is_spot_trading_allowed:
        raise InvalidInput(
            f"symbol {symbol} is not trading (status {rules.status})", field="symbol"
        )


_config_decoder = msgspec.json.Decoder(dict[str, Any])


def bot_view(record: BotRecord) -> Bot:
    fields = record.fields
    try:
        config: dict[str, Any] = _config_decoder.decode(fields.get(BotField.CONFIG, "{}"))
    except (msgspec.DecodeError, msgspec.ValidationError):
        config = {}
    stale = [s for s in fields.get(BotField.STALE, "").split(",") if s]
    return Bot(
        id=record.bot_id,
        name=str(config.get("name", "")),
        symbol=str(config.get("symbol", "")),
        interval=str(config.get("interval", "")),
        strategy=str(config.get("strategy", "")),
        config=config,
        desired=fields.get(BotField.DESIRED, Desired.STOPPED.value),
        status=fields.get(BotField.STATUS, BotStatus.STOPPED.value),
        status_reason=fields.get(BotField.STATUS_REASON, ""),
        stale=stale,
        owner=fields.get(BotField.OWNER, ""),
        epoch=_int(fields.get(BotField.EPOCH)),
        error=fields.get(BotField.ERROR, ""),
        created_at=_int(fields.get(BotField.CREATED_AT)),
        updated_at=_int(fields.get(BotField.UPDATED_AT)),
        position=record.position,
        stats=record.stats,
    )


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def _dec(value: str | None) -> Decimal:
    try:
        return Decimal(value) if value else ZERO
    except InvalidOperation:
        return ZERO


def check_amounts(config: BotConfig, max_quote: Decimal) -> None:
    """Bounds BotConfig leaves open: an allocation no account holds (1e300) or finer than
    any quote asset's precision is a typo, refused before a runner ever sizes with it."""
    allocation = config.quote_allocation
    if allocation > max_quote:
        raise BadRequest(
            f"quote_allocation {allocation} is above the limit {max_quote} "
            "(BOTFLEET_API_MAX_QUOTE_ALLOCATION)",
            field="quote_allocation",
        )
    exponent = allocation.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -QUOTE_MAX_DECIMALS:
        raise BadRequest(
            f"quote_allocation {allocation} has more than {QUOTE_MAX_DECIMALS} decimals",
            field="quote_allocation",
        )


def check_allowed(symbol: str, allowed: frozenset[str]) -> None:
    if allowed and symbol not in allowed:
        raise InvalidInput(
            f"symbol {symbol} is not one the gateway may trade "
            f"(BOTFLEET_GATEWAY_ALLOWED_SYMBOLS: {', '.join(sorted(allowed))})",
            field="symbol",
        )


class Fleet:
    def __init__(
        self,
        repo: Repository,
        *,
        max_wait_s: float = 60.0,
        max_quote: Decimal = Decimal(1_000_000_000),
        allowed_symbols: frozenset[str] = frozenset(),
        exchange_url: str | None = None,
    ) -> None:
        self.repo = repo
        self.max_wait_s = max_wait_s
        self.max_quote = max_quote
        self.allowed_symbols = allowed_symbols
        # Probed by the health report (the simulator's REST URL when the fleet runs on it).
        self.exchange_url = exchange_url

    # --- bots ----------------------------------------------------------------------------
    async def create(self, config: BotConfig) -> Bot:
        check_amounts(config, self.max_quote)
        check_allowed(config.symbol, self.allowed_symbols)
        await check_symbol(self.repo, config.symbol)
        created = now_ms()
        bot_id = new_id(created)
        await self.repo.create_bot(bot_id, config.name, config_json(config), created)
        return bot_view(await self.repo.bot(bot_id))

    async def get(self, bot_id: str) -> Bot:
        return bot_view(await self.repo.bot(bot_id))

    async def list(self, query: Query, *, offset: int, limit: int) -> BotPage:
        """A page of bots filtered and sorted on the server (services/api/listing.py)."""
        if query.by_range:
            total = await self.repo.count_bots()
            if query.descending:
                ids = await self.repo.bot_ids_desc(offset, limit)
            else:
                ids = await self.repo.bot_ids(offset, limit)
        else:
            matching = query.select(await self.repo.bot_columns(query.columns()))
            total = len(matching)
            ids = matching[offset : offset + limit]
        items = [bot_view(r) for r in await self.repo.bots(ids)]
        return BotPage(items=items, total=total, offset=offset, limit=limit)

    async def update(self, bot_id: str, changes: dict[str, Any]) -> Bot:
        if not changes:
            raise BadRequest("no fields to change", field="body")
        record = await self.repo.bot(bot_id)
        lifecycle.check_update(record.state)
        current = json.loads(record.fields.get(BotField.CONFIG, "{}"))
        merged = BotConfig.model_validate({**current, **changes})
        check_amounts(merged, self.max_quote)
        if merged.symbol != current.get("symbol"):
            check_allowed(merged.symbol, self.allowed_symbols)
            await check_symbol(self.repo, merged.symbol)
        new_json = config_json(merged)
        await self.repo.update_config(
            bot_id,
            lambda r: lifecycle.check_update(r.state),
            lambda _: new_json,
            command(bot_id, CommandAction.UPDATE, new_id()),
            old_name=str(current.get("name", "")),
            new_name=merged.name,
        )
        return await self.get(bot_id)

    async def delete(self, bot_id: str) -> None:
        await self.repo.delete_bot(
            bot_id,
            lambda r: lifecycle.check_delete(r.state),
            command(bot_id, CommandAction.DELETE, new_id()),
        )

    async def start(self, bot_id: str, wait_s: float) -> CommandAccepted:
        await self.repo.bot(bot_id)  # 404 before 503
        await self.require_alive("runner", "no bot runner is alive to run the bot")
        await self.require_alive("gateway", "no execution gateway is alive to place its orders")
        return await self._command(bot_id, CommandAction.START, Desired.RUNNING, wait_s)

    async def stop(self, bot_id: str, wait_s: float) -> CommandAccepted:
        return await self._command(bot_id, CommandAction.STOP, Desired.STOPPED, wait_s)

    async def _command(
        self, bot_id: str, action: CommandAction, desired: Desired, wait_s: float
    ) -> CommandAccepted:
        if not 0 <= wait_s <= self.max_wait_s:
            raise BadRequest(
                f"wait must be between 0 and {self.max_wait_s:g} seconds", field="wait"
            )
        cmd = command(bot_id, action, new_id())
        record = await self.repo.set_desired(bot_id, desired, cmd)
        status = record.fields.get(BotField.STATUS, BotStatus.STOPPED.value)
        done = lifecycle.settled(action.value, status)
        if not done and wait_s > 0:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_s
            while loop.time() < deadline:
                await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
                current = await self.repo.bot_status(bot_id)
                if current is None:
                    raise NotFound(f"bot {bot_id} was deleted while waiting", field="bot_id")
                status = current
                if lifecycle.settled(action.value, status):
                    done = True
                    break
        return CommandAccepted(
            command_id=cmd.command_id,
            bot_id=bot_id,
            action=action.value,
            desired=desired.value,
            status=status,
            settled=done,
        )

    async def require_alive(self, service: str, reason: str) -> None:
        now = now_ms()
        beats = await self.repo.heartbeats(service)
        if not any(judge(b, now).healthy for b in beats):
            raise Unavailable(reason)

    # --- summary and health ----------------------------------------------------------------
    async def summary(self) -> Summary:
        ids = await self.repo.bot_ids()
        records = await self.repo.bots(ids)
        symbols = {bot_view(r).symbol for r in records if r.position}
        prices = await self.repo.prices(s for s in symbols if s)
        halt = await self.repo.halt_reason()
        return summarize([bot_view(r) for r in records], prices, halt)

    async def health(self) -> Health:
        probe = (
            asyncio.create_task(probe_exchange(self.exchange_url))
            if self.exchange_url is not None
            else None
        )
        try:
            ping_ms = await self.repo.ping()
        except (ConnectionError, OSError) as exc:  # pragma: no cover - mapped to 503 upstream
            if probe is not None:
                probe.cancel()
            raise Unavailable(f"redis unreachable: {exc}") from exc
        beats = await self.repo.heartbeats()
        now = now_ms()
        snap = await self.repo.health_snapshot()
        return assess_health(
            now=now,
            exchange_now=snap.clock.now(now) if snap.clock is not None else now,
            ping_ms=ping_ms,
            beats=beats,
            last_update=snap.last_update,
            bots=snap.stale_bots,
            halt=snap.halt,
            exchange=await probe if probe is not None else None,
        )


def summarize(bots: list[Bot], prices: dict[str, str], halt: str | None) -> Summary:
    """Fleet totals from each bot's stats and position (pure)."""
    by_status: dict[str, int] = {}
    exposure = equity = realized = unrealized = total = fees = ZERO
    trades = open_positions = 0
    for bot in bots:
        by_status[bot.status] = by_status.get(bot.status, 0) + 1
        s = bot.stats
        equity += _dec(s.get("equity"))
        realized += _dec(s.get("realized_pnl"))
        unrealized += _dec(s.get("unrealized_pnl"))
        total += _dec(s.get("total_pnl")) or _dec(s.get("realized_pnl")) + _dec(
            s.get("unrealized_pnl")
        )
        fees += _dec(s.get("fees"))
        trades += _int(s.get("trades"))
        qty = _dec(bot.position.get("qty"))
        if qty > 0:
            open_positions += 1
            price = _dec(prices.get(bot.symbol)) or _dec(bot.position.get("entry_price"))
            exposure += qty * price
    return Summary(
        bots=len(bots),
        by_status=by_status,
        open_positions=open_positions,
        exposure=str(exposure),
        equity=str(equity),
        realized_pnl=str(realized),
        unrealized_pnl=str(unrealized),
        total_pnl=str(total),
        fees=str(fees),
        trades=trades,
        halted=halt is not None,
        halt_reason=halt,
    )
