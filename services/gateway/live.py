"""Live mode: signed REST orders against ``BOTFLEET_BINANCE_ENV`` (sim, testnet,
production), with the unknown-outcome rule of DESIGN "Traps" at its centre.

An admitted order is marked SENDING (with the exchange-clock time) before the request
leaves. Its answer ends it (FILLED/EXPIRED/REJECTED...), puts it on the book (OPEN,
followed through the user data stream and REST), or leaves the outcome unknown (timeout, 5xx, -1006, -1007,
reset after sending): the record becomes UNKNOWN, the intent stays pending, and every
later attempt first asks the exchange for the client order id. "Order does not exist"
allows a resend only once the exchange clock has passed ``timestamp + recvWindow``.
Nothing is resent on any other path. When the fleet's weight or order budget is spent,
the order is not sent and the delay is reported in ``stream:events``.

Start-up reconciliation (before the first new intent) queries every admitted, unended
order and every open ``bf-`` order on the exchange, completes what has ended, and
reports each difference in ``stream:events``. Resting orders are followed through the
WebSocket API user data stream (``user_stream.py``), REST polling being the fallback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from services.gateway.breaker import BreakerState, CircuitBreaker
from services.gateway.exchange import ExchangeClient, OrderDelayed
from services.gateway.orders import (
    FINAL,
    NotFoundVerdict,
    RecordStatus,
    after_not_found,
    rejection,
    report_from_venue,
)
from services.gateway.processor import EVENTS_MAXLEN, Job, Outcome, Processor, halt_event
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore
from services.gateway.user_stream import UserStream
from shared import keys
from shared.binance.errors import (
    AuthError,
    BinanceError,
    DuplicateOrderError,
    NoSuchOrderError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    RetryableError,
)
from shared.binance.schemas import MyTrade, OrderFull, QueryOrder
from shared.binance.signing import Signer, signer_from_config
from shared.bots import client_order_id
from shared.logging import get_logger
from shared.messages import (
    Event,
    ExecutionReport,
    Fill,
    MessageDecodeError,
    OrderIntent,
    Side,
    decode_as,
    encode_json,
)
from shared.ratelimit import OrderBudget, WeightBudget, rules_from_exchange_info
from shared.redis import now_ms
from shared.streams import publish_nowait

log = get_logger(__name__)
MODE = "live"
SERVICE = "gateway"


def amounts(report: ExecutionReport, base_asset: str, quote_asset: str) -> tuple[Decimal, Decimal]:
    """(position quantity, quote amount) an exchange fill adds to the risk figures:
    a BUY's position is net of a base-asset commission and its cost includes a quote
    commission; a SELL's proceeds are net of a quote commission."""
    qty, quote = report.executed_qty, report.cumulative_quote
    for f in report.fills:
        if f.commission_asset == base_asset and report.side is Side.BUY:
            qty -= f.commission
        elif f.commission_asset == quote_asset:
            quote += f.commission if report.side is Side.BUY else -f.commission
    return qty, quote


def fills_from_trades(trades: Sequence[MyTrade]) -> tuple[Fill, ...]:
    return tuple(
        Fill(
            price=Decimal(t.price),
            qty=Decimal(t.qty),
            commission=Decimal(t.commission),
            commission_asset=t.commissionAsset,
            trade_id=t.id,
        )
        for t in trades
    )


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


class LiveExecutor:
    def __init__(
        self, client: ExchangeClient, store: GatewayStore, *, concurrency: int = 16
    ) -> None:
        self.client = client
        self.store = store
        self.semaphore = asyncio.Semaphore(concurrency)
        self.delayed = 0
        self._events: list[Event] = []

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    async def flush_events(self) -> None:
        """Publish the events gathered since the last flush (breaker, delays, differences)."""
        pending = self.take_events()
        if not pending:
            return
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for event in pending:
                publish_nowait(pipe, keys.EVENTS, event, maxlen=EVENTS_MAXLEN)
            await pipe.execute()

    def event(self, kind: str, message: str, level: str = "warning", **details: Any) -> None:
        self._events.append(
            Event(
                kind=kind,
                message=message,
                level=level,
                service=SERVICE,
                bot_id=details.pop("bot_id", None),
                symbol=details.pop("symbol", None),
                details=details,
                ts=now_ms(),
            )
        )

    def note_difference(self, cid: str, what: str, **details: Any) -> None:
        log.warning("reconcile.difference", cid=cid, what=what)
        self.event("reconcile.difference", f"order {cid}: {what}", client_order_id=cid, **details)

    async def execute_many(self, jobs: Sequence[Job]) -> list[Outcome | None]:
        async def one(job: Job) -> Outcome | None:
            async with self.semaphore:
                return await self._one(job)

        outcomes = list(await asyncio.gather(*(one(job) for job in jobs)))
        await self.flush_events()
        return outcomes

    async def _one(self, job: Job) -> Outcome | None:
        status = job.record.get("status", "")
        if status in (RecordStatus.SENDING, RecordStatus.UNKNOWN):
            return await self.resolve(job)
        return await self._send(job)

    async def _send(self, job: Job) -> Outcome | None:
        intent, cid, order = job.intent, job.cid, job.order
        if order is None or job.rules is None:
            return Outcome(
                report=rejection(intent, cid, "intent no longer valid", mode=MODE, now_ms=now_ms())
            )
        params = order.wire_params(job.rules, cid)
        await self.store.mark(
            cid,
            status=RecordStatus.SENDING,
            sent_at=self.client.now_ms(),
            recv_window=self.client.recv_window_ms,
            updated_at=now_ms(),
        )
        try:
            full, _timestamp = await self.client.new_order(params)
        except OrderDelayed as exc:
            await self.store.mark(cid, status=RecordStatus.ACCEPTED)  # never sent
            self.delayed += 1
            log.warning("order.delayed", cid=cid, delay_s=round(exc.delay_s, 3))
            self.event(
                "order.delayed",
                f"order not sent: fleet budget spent, retry in {exc.delay_s:.1f}s",
                bot_id=intent.bot_id,
                symbol=intent.symbol,
                client_order_id=cid,
                delay_s=round(exc.delay_s, 3),
            )
            return None
        except OutcomeUnknownError as exc:
            await self._unknown(job, str(exc))
            return None
        except DuplicateOrderError:
            # an open order already has this id: it is ours; find out what it is
            await self._unknown(job, "duplicate client order id")
            return await self.resolve(job)
        except (RetryableError, RateLimitedError) as exc:
            await self.store.mark(cid, status=RecordStatus.ACCEPTED)  # not executed
            log.warning("order.not_sent", cid=cid, error=str(exc))
            return None
        except AuthError as exc:
            self.event(
                "exchange.auth_failed",
                f"order refused: {exc.code} {exc.message}",
                level="error",
                bot_id=intent.bot_id,
                symbol=intent.symbol,
                client_order_id=cid,
            )
            return Outcome(
                report=rejection(
                    intent, cid, f"exchange: {exc.code} {exc.message}", mode=MODE, now_ms=now_ms()
                )
            )
        except RejectedError as exc:
            return Outcome(
                report=rejection(
                    intent, cid, f"exchange: {exc.code} {exc.message}", mode=MODE, now_ms=now_ms()
                )
            )
        return self._outcome(job, full)

    async def _unknown(self, job: Job, why: str) -> None:
        log.warning("order.outcome_unknown", cid=job.cid, why=why)
        await self.store.mark(
            job.cid, status=RecordStatus.UNKNOWN, sent_at=self.client.now_ms(), updated_at=now_ms()
        )
        job.record["status"] = RecordStatus.UNKNOWN
        job.record["sent_at"] = str(self.client.now_ms())
        job.record.setdefault("recv_window", str(self.client.recv_window_ms))

    def _outcome(
        self, job: Job, order: OrderFull | QueryOrder, fills: tuple[Fill, ...] | None = None
    ) -> Outcome:
        report = report_from_venue(
            job.intent, job.cid, order, mode=MODE, now_ms=now_ms(), fills=fills
        )
        if job.rules is None:
            qty, quote = report.executed_qty, report.cumulative_quote
        else:
            qty, quote = amounts(report, job.rules.base_asset, job.rules.quote_asset)
        return Outcome(report=report, position_qty=qty, quote_amount=quote)

    async def resolve(self, job: Job, *, reconciling: bool = False) -> Outcome | None:
        """Ask the exchange what became of the order before doing anything else."""
        try:
            venue = await self.client.query_order(job.intent.symbol, job.cid)
        except NoSuchOrderError:
            sent_at = int(job.record.get("sent_at") or 0)
            window = int(job.record.get("recv_window") or self.client.recv_window_ms)
            verdict = after_not_found(self.client.now_ms(), sent_at, window)
            if verdict is NotFoundVerdict.WAIT:
                return None
            if reconciling:
                self.note_difference(
                    job.cid,
                    f"{job.record.get('status')} here but never reached the exchange; it will be sent again",
                )
            await self.store.mark(job.cid, status=RecordStatus.ACCEPTED)
            job.record["status"] = RecordStatus.ACCEPTED
            if job.order is None:
                return None  # the consumer re-prepares and sends it
            return await self._send(job)
        except BinanceError as exc:
            log.warning("order.query_failed", cid=job.cid, error=str(exc))
            return None
        if reconciling and venue.status != job.record.get("status"):
            self.note_difference(
                job.cid,
                f"{job.record.get('status')} here, {venue.status} on the exchange",
                symbol=job.intent.symbol,
            )
        fills: tuple[Fill, ...] = ()
        if Decimal(venue.executedQty) > 0:
            try:
                fills = fills_from_trades(
                    await self.client.my_trades(job.intent.symbol, venue.orderId)
                )
            except BinanceError as exc:
                log.warning("order.trades_failed", cid=job.cid, error=str(exc))
                return None
        outcome = self._outcome(job, venue, fills)
        if not outcome.report.final and job.record.get("status") == RecordStatus.OPEN:
            return None  # still resting: nothing new
        return outcome

    async def complete(self, processor: Processor, job: Job, outcome: Outcome) -> None:
        now = now_ms()
        async with self.store.redis.pipeline(transaction=False) as pipe:
            self.store.queue_finalize(
                pipe,
                job.cid,
                outcome.report,
                position_qty=outcome.position_qty,
                quote_amount=outcome.quote_amount,
                now_ms=now,
            )
            [reply] = await pipe.execute()
        completion = self.store.parse_completion(reply)
        if completion.outcome == "done":
            processor.figures.reports += 1
        if completion.halt_reason:
            self._events.append(halt_event(completion.halt_reason, job.intent, SERVICE, now))


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
