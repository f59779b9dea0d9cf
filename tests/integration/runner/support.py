"""Plays the other services around a runner in tests: the API (bot records and
commands), ingestion (candles, ticks) and the gateway (execution reports)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import redis as sync_redis

from shared import keys
from shared.bots import BotStatus, Desired
from shared.messages import (
    BotCommand,
    Candle,
    CommandAction,
    ExecutionReport,
    ExecutionStatus,
    Fill,
    OrderIntent,
    Side,
    Tick,
    decode_as,
    encode,
    encode_json,
)
from tests.support.messages import candle

MINUTE = 60_000


def config(symbol: str = "BTCUSDT", interval: str = "1m", **overrides: Any) -> str:
    body: dict[str, Any] = {
        "name": "test bot",
        "symbol": symbol,
        "interval": interval,
        "strategy": "rsi",
        "params": {"period": 5, "oversold": 30, "overbought": 70, "sell_on_overbought": False},
        "quote_allocation": "1000",
        "sizing": {"mode": "fixed_quote", "quote_amount": "100"},
        "stop_loss_pct": "5",
    }
    body.update(overrides)
    return json.dumps(body)


def create_bot(r: sync_redis.Redis, bot_id: str, cfg: str, *, start: bool = True) -> None:
    now = int(time.time() * 1000)
    r.hset(
        keys.bot(bot_id),
        mapping={
            "config": cfg,
            "desired": Desired.RUNNING.value if start else Desired.STOPPED.value,
            "status": BotStatus.STOPPED.value,
            "created_at": now,
        },
    )
    r.zadd(keys.BOTS, {bot_id: now})
    if start:
        command(r, bot_id, CommandAction.START)


def command(r: sync_redis.Redis, bot_id: str, action: CommandAction) -> None:
    if action is CommandAction.STOP:
        r.hset(keys.bot(bot_id), "desired", Desired.STOPPED.value)
    msg = BotCommand(
        command_id=f"c-{time.monotonic_ns()}", bot_id=bot_id, action=action, issued_at=0
    )
    r.xadd(keys.BOT_COMMANDS, encode(msg))


def history(
    symbol: str,
    closes: list[float],
    *,
    interval: str = "1m",
    interval_ms: int = MINUTE,
    end: int | None = None,
) -> list[Candle]:
    """Closed candles whose last one closed just now (fresh data)."""
    now = int(time.time() * 1000) if end is None else end
    last_open = (now // interval_ms) * interval_ms - interval_ms
    first = last_open - (len(closes) - 1) * interval_ms
    return [
        candle(symbol, interval_ms, first + i * interval_ms, x, interval)
        for i, x in enumerate(closes)
    ]


def seed_candles(r: sync_redis.Redis, candles: list[Candle]) -> None:
    """The series' history, as ingestion leaves it for a market that starts with it:
    the list, and its first open time as the exchange's first candle (so a runner seeds
    its bots from it rather than wait for a deeper warm-up)."""
    c0 = candles[0]
    r.rpush(keys.candles(c0.symbol, c0.interval), *[encode_json(c) for c in candles])
    r.hset(keys.MARKET_HISTORY_START, keys.subscription(c0.symbol, c0.interval), c0.open_time)


def push_candle(r: sync_redis.Redis, c: Candle) -> None:
    r.rpush(keys.candles(c.symbol, c.interval), encode_json(c))
    r.xadd(keys.candle_stream(c.symbol, c.interval), encode(c))


def push_tick(r: sync_redis.Redis, symbol: str, price: float) -> None:
    now = int(time.time() * 1000)
    r.set(keys.price(symbol), str(price))
    r.hset(keys.MARKET_LAST_UPDATE, symbol, now)
    r.xadd(
        keys.tick_stream(symbol),
        encode(Tick(symbol=symbol, price=Decimal(str(price)), event_time=now)),
    )


def falling_then_up(n: int = 30, start: float = 100.0) -> tuple[list[float], float]:
    """Closes falling by 1 each candle (RSI 0) and a next close that lifts RSI(5) above 30."""
    closes = [start - i for i in range(n)]
    return closes, closes[-1] + 3


def intents(r: sync_redis.Redis) -> list[OrderIntent]:
    return [decode_as(f, OrderIntent) for _, f in r.xrange(keys.ORDER_INTENTS)]


def fill(
    r: sync_redis.Redis, intent: OrderIntent, price: float, *, epoch: int | None = None
) -> None:
    """Gateway role: a final FILLED report for ``intent`` at ``price`` (fee 0.1% in quote)."""
    p = Decimal(str(price))
    qty = (
        intent.quantity
        if intent.quantity is not None
        else (intent.quote_quantity or Decimal(0)) / p
    )
    quote = qty * p
    fee = quote / 1000
    report = ExecutionReport(
        intent_id=intent.intent_id,
        client_order_id="bf-test",
        bot_id=intent.bot_id,
        symbol=intent.symbol,
        side=intent.side,
        status=ExecutionStatus.FILLED,
        final=True,
        executed_qty=qty,
        cumulative_quote=quote,
        avg_price=p,
        commission=fee,
        commission_asset="USDT",
        fills=(Fill(price=p, qty=qty, commission=fee, commission_asset="USDT"),),
        is_exit=intent.side is Side.SELL,
        epoch=intent.epoch if epoch is None else epoch,
        ts=int(time.time() * 1000),
    )
    r.xadd(keys.EXECUTIONS, encode(report))


def text(hash_: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in hash_.items()}


def wait(condition: Any, timeout: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen within {timeout}s (last: {last!r})")


def health(r: sync_redis.Redis, instance: str) -> dict[str, str]:
    """The runner's heartbeat hash (``{}`` once it expired)."""
    return text(r.hgetall(keys.health("runner", instance)))


def loop_ms(r: sync_redis.Redis, instance: str) -> int:
    """When the runner's latest read round began (``last_loop_ms`` of its heartbeat)."""
    return int(health(r, instance).get("last_loop_ms") or 0)


def rounds_done(r: sync_redis.Redis, instance: str, since_ms: int, timeout: float = 10) -> None:
    """Wait until every read round of ``instance`` that had begun by ``since_ms`` (epoch
    ms, this host's clock) has ended: the positive sign, before checking that nothing
    happened, that the runner went past the entries written before ``since_ms``.

    Rounds run one after the other. The first round seen to begin at or after
    ``since_ms`` may be the one that read those entries; a round that began after it
    proves that one ended (idle rounds end every ``--block-ms``, and the heartbeat
    shows them once a second)."""
    first = wait(lambda: (ms := loop_ms(r, instance)) >= since_ms and ms, timeout, "a read round")
    wait(lambda: loop_ms(r, instance) > first, timeout, f"a read round of {instance} after {first}")


def decided(r: sync_redis.Redis, bot_ids: list[str], open_time: int) -> bool:
    """Every bot has decided the candle opened at ``open_time`` (or a newer one)."""
    return all(int(r.hget(keys.bot_stats(b), "last_candle") or 0) >= open_time for b in bot_ids)
