"""Live mode's executor: sends admitted orders over signed REST and settles each one
with the unknown-outcome rule of DESIGN "Traps" at its centre.

An admitted order is marked SENDING (with the exchange-clock time) before the request
leaves. Its answer ends it (FILLED/EXPIRED/REJECTED...), puts it on the book (OPEN,
followed by the follower), or leaves the outcome unknown (timeout, 5xx, -1006, -1007,
reset after sending): the record becomes UNKNOWN, the intent stays pending, and every
later attempt first asks the exchange for the client order id. "Order does not exist"
allows a resend only once the exchange clock has passed ``timestamp + recvWindow``.
Nothing is resent on any other path. When the fleet's weight or order budget is spent,
the order is not sent and the delay is reported in ``stream:events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from services.gateway.exchange import ExchangeClient, OrderDelayed
from services.gateway.orders import (
    NotFoundVerdict,
    RecordStatus,
    after_not_found,
    rejection,
    report_from_venue,
)
from services.gateway.processor import (
    EVENTS_MAXLEN,
    Job,
    Outcome,
    Processor,
    ending_of,
    halt_event,
)
from services.gateway.store import GatewayStore
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
from shared.logging import get_logger
from shared.messages import (
    Event,
    ExecutionReport,
    Fill,
    Side,
)
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
        [completion] = await self.store.finalize_many([ending_of(job.cid, outcome)], now)
        if completion.outcome == "done":
            processor.figures.reports += 1
        if completion.halt_reason:
            self._events.append(halt_event(completion.halt_reason, job.intent, SERVICE, now))
