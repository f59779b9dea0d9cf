"""Live mode's runtime: builds the signed client from the settings, reconciles the
order records with the exchange before the first new intent, follows resting orders
(the WebSocket API user data stream, REST polling as the fallback) and keeps
``balances:live``. The executor that sends orders is :mod:`services.gateway.live_executor`.

Start-up reconciliation queries every admitted, unended order and every open ``bf-``
order on the exchange, completes what has ended, and reports each difference in
``stream:events``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.gateway.breaker import BreakerState, CircuitBreaker
from services.gateway.exchange import ExchangeClient
from services.gateway.live_executor import LiveExecutor
from services.gateway.orders import (
    FINAL,
    RecordStatus,
)
from services.gateway.processor import Job, Processor
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore
from services.gateway.user_stream import UserStream
from shared.binance.errors import (
    BinanceError,
    NoSuchOrderError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryableError,
)
from shared.binance.signing import Signer, signer_from_config
from shared.bots import client_order_id
from shared.logging import get_logger
from shared.messages import (
    Event,
    MessageDecodeError,
    OrderIntent,
    decode_as,
    encode_json,
)
from shared.ratelimit import OrderBudget, WeightBudget, rules_from_exchange_info
from shared.redis import now_ms

log = get_logger(__name__)


@dataclass
class LiveRuntime:
    client: ExchangeClient
    store: GatewayStore
    http: httpx.AsyncClient
    executor: LiveExecutor
    user_stream: UserStream | None = None
    poll_interval_s: float = 1.0
    stream_poll_interval_s: float = 30.0
    events: list[Event] = field(default_factory=list)
    balances_refreshed: float = 0.0

    async def close(self) -> None:
        await self.http.aclose()

    def health(self) -> dict[str, Any]:
        stream = self.user_stream.health() if self.user_stream else {"user_stream": "off"}
        return {**self.client.health(), **stream, "delayed_orders": self.executor.delayed}

    def interval(self) -> float:
        """REST polling is the fallback: frequent while the user stream is down."""
        if self.user_stream is not None and self.user_stream.connected:
            return self.stream_poll_interval_s
        return self.poll_interval_s

    async def flush_events(self) -> None:
        await self.executor.flush_events()

    async def refresh_balances(self) -> None:
        """``balances:live`` from ``GET /api/v3/account`` (weight 20; at most every 10 s)."""
        if time.monotonic() - self.balances_refreshed < 10.0:
            return
        self.balances_refreshed = time.monotonic()
        try:
            account = await self.client.account()
        except BinanceError as exc:
            log.warning("balances.refresh_failed", error=str(exc))
            return
        mapping: dict[str, str] = {}
        for b in account.balances:
            mapping[f"{b.asset}:free"] = b.free
            mapping[f"{b.asset}:locked"] = b.locked
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.store.balances_key)
            if mapping:
                pipe.hset(self.store.balances_key, mapping=mapping)
            await pipe.execute()

    async def reconcile(self, processor: Processor) -> None:
        """Before the first new intent: settle every admitted, unended order with the
        exchange and report each difference (DESIGN "Traps": AOF can lose a second)."""
        cids = await self.store.active()
        records = await self.store.records(cids) if cids else []
        checked = 0
        for cid, record in zip(cids, records, strict=True):
            status = record.get("status", "")
            if not record or status in FINAL or status == RecordStatus.ACCEPTED:
                continue  # never sent: its pending intent will be processed normally
            checked += 1
            job = _job_from_record(cid, record, processor)
            outcome = await self.executor.resolve(job, reconciling=True)
            if outcome is not None and outcome.report.final:
                await self.executor.complete(processor, job, outcome)
        adopted = await self._find_lost_records(processor)
        known = set(cids)
        try:
            venue_open = await self.client.open_orders()
        except BinanceError as exc:
            log.warning("reconcile.open_orders_failed", error=str(exc))
            venue_open = []
        for order in venue_open:
            if order.clientOrderId.startswith("bf-") and order.clientOrderId not in known:
                record = await self.store.record(order.clientOrderId)
                if record.get("status") != RecordStatus.OPEN:
                    self.executor.note_difference(
                        order.clientOrderId,
                        f"open on the exchange ({order.status}) but {record.get('status') or 'unknown'} here",
                        symbol=order.symbol,
                    )
        await self.flush_events()
        log.info("reconcile.done", checked=checked, adopted=adopted, venue_open=len(venue_open))

    async def _find_lost_records(self, processor: Processor) -> int:
        """An intent still waiting in the stream with no order record may have been placed
        by a run whose writes Redis lost (AOF everysec). Ask the exchange for each such
        client order id before it is processed: Binance would accept the id again once
        the first order filled (DESIGN "Traps"). Found orders get their record back and
        their report; the rest are processed normally."""
        waiting = await self.store.waiting_intents()
        by_cid: dict[str, tuple[OrderIntent, bytes]] = {}
        for _entry_id, fields in waiting:
            raw = fields.get(b"data", fields.get("data"))
            try:
                intent = decode_as(fields, OrderIntent)
            except MessageDecodeError:
                continue  # the consumer dead-letters it
            data = raw if isinstance(raw, bytes) else encode_json(intent)
            by_cid.setdefault(client_order_id(intent.intent_id), (intent, data))
        if not by_cid:
            return 0
        cids = list(by_cid)
        records = await self.store.records(cids)
        adopted = 0
        for cid, record in zip(cids, records, strict=True):
            if record:
                continue
            intent, raw = by_cid[cid]
            try:
                venue = await self.client.query_order(intent.symbol, cid)
            except NoSuchOrderError:
                continue  # never placed: the consumer will place it
            except BinanceError as exc:
                log.warning("reconcile.query_failed", cid=cid, error=str(exc))
                continue
            if not await self.store.adopt(cid, raw, now_ms()):
                continue
            adopted += 1
            self.executor.note_difference(
                cid,
                f"{venue.status} on the exchange but no record here: record restored",
                symbol=intent.symbol,
            )
            job = Job(
                intent,
                cid,
                None,
                processor.rules.get(intent.symbol),
                None,
                await self.store.record(cid),
            )
            outcome = await self.executor.resolve(job)
            if outcome is None:
                continue
            if outcome.report.final:
                await self.executor.complete(processor, job, outcome)
            else:
                async with self.store.redis.pipeline(transaction=False) as pipe:
                    self.store.queue_rest(pipe, cid, outcome.report, now_ms())
                    await pipe.execute()
        return adopted

    def follow_step(self, processor: Processor) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            await self.flush_events()
            cids = await self.store.open()
            if cids:
                records = await self.store.records(cids)
                for cid, record in zip(cids, records, strict=True):
                    if record.get("status") != RecordStatus.OPEN:
                        continue
                    job = _job_from_record(cid, record, processor)
                    outcome = await self.executor.resolve(job)
                    if outcome is not None and outcome.report.final:
                        await self.executor.complete(processor, job, outcome)
            await self.refresh_balances()
            await self.flush_events()

        return step


def _job_from_record(cid: str, record: dict[str, str], processor: Processor) -> Job:
    intent = decode_as({"type": "order_intent", "data": record["intent"]}, OrderIntent)
    return Job(intent, cid, None, processor.rules.get(intent.symbol), None, record)


def load_signer(settings: GatewaySettings) -> Signer:
    """Ed25519 when a private key file is configured, HMAC-SHA256 otherwise."""
    pem = (
        Path(settings.binance_private_key_file).read_bytes()
        if settings.binance_private_key_file
        else None
    )
    secret = settings.binance_api_secret.get_secret_value() if settings.binance_api_secret else None
    return signer_from_config(secret=secret, private_key_pem=pem)


async def start_live(settings: GatewaySettings, store: GatewayStore, redis: Any) -> LiveRuntime:
    """Build the signed client from the settings, sync the clock and the rate limits."""
    assert settings.binance_api_key is not None
    signer = await asyncio.to_thread(load_signer, settings)
    timeout = settings.gateway_http_timeout_s
    http = httpx.AsyncClient(
        base_url=settings.rest_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )
    client_holder: list[ExchangeClient] = []

    def on_breaker(state: BreakerState, why: str) -> None:
        if client_holder:
            executor.event(
                "exchange.circuit_breaker",
                f"circuit breaker {state.value}: {why}",
                level="error" if state is BreakerState.OPEN else "info",
                state=state.value,
            )

    weight = WeightBudget(redis, limit_per_minute=settings.gateway_weight_limit)
    orders = OrderBudget(redis)
    client = ExchangeClient(
        http,
        api_key=settings.binance_api_key.get_secret_value(),
        signer=signer,
        weight=weight,
        orders=orders,
        breaker=CircuitBreaker(
            settings.gateway_breaker_failures, settings.gateway_breaker_cooldown_s
        ),
        recv_window_ms=settings.gateway_recv_window_ms,
        use_server_time=settings.gateway_use_server_time,
        on_breaker=on_breaker,
    )
    weight.clock = client.now_ms
    orders.clock = client.now_ms
    executor = LiveExecutor(client, store)
    client_holder.append(client)
    runtime = LiveRuntime(
        client=client,
        store=store,
        http=http,
        executor=executor,
        poll_interval_s=settings.gateway_poll_interval_s,
        stream_poll_interval_s=settings.gateway_stream_poll_interval_s,
    )
    if settings.gateway_user_stream:
        runtime.user_stream = UserStream(settings.ws_api_url, client, redis, store.balances_key)
    await _with_retries(client.sync_time, "time sync")
    info = await _with_retries(client.exchange_info, "exchangeInfo")
    rules = rules_from_exchange_info(info.rateLimits)
    weight.apply_rules(rules)
    orders.apply_rules(rules)
    log.info("gateway.live_ready", env=settings.binance_env.value, signer=signer.kind)
    return runtime


async def _with_retries(call: Callable[[], Awaitable[Any]], what: str, attempts: int = 8) -> Any:
    import random

    from shared.binance.backoff import backoff_delays, bounded

    delays = bounded(backoff_delays(0.2, 5.0, random.Random()), attempts)
    while True:
        try:
            return await call()
        except (RetryableError, OutcomeUnknownError, RateLimitedError) as exc:
            delay = next(delays, None)
            if delay is None:
                raise
            log.warning("exchange.start_retry", what=what, error=str(exc), retry_in=round(delay, 2))
            await asyncio.sleep(delay)
