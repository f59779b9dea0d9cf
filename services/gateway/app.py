"""`botfleet gateway`, top to bottom: load settings, connect to Redis (and, live, to the
exchange), reconcile what a previous run left unfinished, then run the intent consumer,
the resting-order follower and the heartbeat until asked to stop."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from services.gateway.consumer import IntentConsumer
from services.gateway.follower import follow
from services.gateway.paper import PaperCosts
from services.gateway.processor import Processor
from services.gateway.rails import Rails
from services.gateway.rules_cache import RulesCache
from services.gateway.settings import GatewaySettings, TradingMode
from services.gateway.store import EXECUTIONS_KEEP_MS, EXECUTIONS_MAXLEN, GatewayStore
from shared import keys
from shared.latency import SIGNAL_TO_ACK_FIELD
from shared.logging import get_logger
from shared.redis import Heartbeat, connect
from shared.retention import retention_loop
from shared.service import supervise

log = get_logger(__name__)
SERVICE = "gateway"


def rails_from(settings: GatewaySettings) -> Rails:
    return Rails(
        allowed_symbols=settings.allowed_symbols,
        max_order_notional=settings.gateway_max_order_notional,
        bot_orders_per_window=settings.gateway_bot_orders_per_min,
        fleet_orders_per_window=settings.gateway_fleet_orders_per_min,
    )


def costs_from(settings: GatewaySettings) -> PaperCosts:
    return PaperCosts(
        taker_fee=settings.paper_taker_fee,
        maker_fee=settings.paper_maker_fee,
        slippage=settings.paper_slippage,
        fee_asset=settings.paper_fee_asset,
    )


def equity_base(settings: GatewaySettings) -> Decimal:
    """The fleet equity drawdown is measured against (before realized PnL)."""
    if settings.gateway_equity_base > 0:
        return settings.gateway_equity_base
    if settings.trading_mode is TradingMode.PAPER:
        return settings.initial_paper_balances.get("USDT", Decimal(0))
    return Decimal(0)


async def main(settings: GatewaySettings, stop: asyncio.Event) -> None:
    mode = settings.trading_mode.value
    redis = await connect(settings.redis_url)
    store = GatewayStore(
        redis,
        mode=mode,
        instance=settings.instance,
        equity_base=equity_base(settings),
        retention_s=settings.gateway_record_retention_s,
    )
    await store.load_scripts()
    await store.upgrade_money()  # before anything adds to an amount
    rules = RulesCache(redis)
    loops: dict[str, Any] = {}
    closers: list[Any] = []
    health: dict[str, Any] = {"mode": mode}
    hold: Callable[[], str] | None = None  # live: refused credentials stop the intake

    if settings.trading_mode is TradingMode.PAPER:
        from services.gateway.paper_executor import PaperExecutor
        from services.gateway.paper_follower import PaperFollower

        await store.seed_paper_balances(settings.initial_paper_balances)
        processor = Processor(
            store, rules, rails_from(settings), PaperExecutor(costs_from(settings))
        )
        paper_follower = PaperFollower(processor, costs_from(settings))
        loops["follower"] = follow(paper_follower.step, 0.1, "paper")
        health["exchange"] = "paper"
    else:
        from services.gateway.live import StartRefused, start_live

        try:
            live = await start_live(settings, store, redis)
        except StartRefused as exc:
            # a clear refusal, not a traceback: the message names the problem
            log.error("gateway.start_refused", reason=str(exc))
            await redis.aclose()
            sys.exit(f"gateway: live start refused: {exc}")
        closers.append(live.close)
        processor = Processor(store, rules, rails_from(settings), live.executor)
        await live.reconcile(processor)  # before the first new intent (DESIGN "Traps")
        stream = live.user_stream
        if stream is not None:
            loops["user_stream"] = stream.run()
        loops["follower"] = follow(
            live.follow_step(processor), live.interval, "live", stream.wake if stream else None
        )
        loops["exchange_watch"] = live.watch.run()
        health["exchange_health"] = live.health
        hold = live.hold

    consumer = IntentConsumer(
        redis,
        processor,
        settings.instance,
        batch=settings.gateway_batch,
        claim_idle_ms=settings.gateway_claim_idle_ms,
        retry_idle_ms=settings.gateway_retry_idle_ms
        or int((settings.gateway_http_timeout_s + 1) * 1000),
        max_deliveries=settings.gateway_max_deliveries,
        hold=hold,
    )

    def figures() -> dict[str, Any]:
        f = processor.figures
        extra = health.get("exchange_health")
        return {
            "mode": mode,
            "loop_at": consumer.loop_at,  # shared/health.py: a stalled loop shows
            "intents_processed": f.intents,
            "reports": f.reports,
            "duplicates": f.duplicates,
            "dead_letters": f.dead_letters,
            "halts": f.halts,
            "rejections": dict(f.rejections),
            SIGNAL_TO_ACK_FIELD: f.signal_to_ack.to_json(),
            **(extra() if callable(extra) else {"exchange": health.get("exchange", "")}),
        }

    heartbeat = Heartbeat(redis, SERVICE, settings.instance, figures)
    # Start-up objects live for the whole run: keep the cyclic GC from rescanning them
    # on the hot path (fewer, shorter collection pauses).
    gc.collect()
    gc.freeze()
    loops["consumer"] = consumer.run()
    loops["heartbeat"] = heartbeat.run()
    # stream:executions is trimmed below what its groups (the ledger) acknowledged
    loops["executions_retention"] = retention_loop(
        redis, keys.EXECUTIONS, maxlen=EXECUTIONS_MAXLEN, keep_ms=EXECUTIONS_KEEP_MS
    )
    log.info("gateway.started", mode=mode, env=settings.binance_env.value)
    try:
        await supervise(stop, loops)
    finally:
        await heartbeat.clear()
        for close in closers:
            await close()
        await redis.aclose()
