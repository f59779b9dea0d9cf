"""Live mode's executor: sends admitted orders over signed REST and settles each one
with the unknown-outcome rule of DESIGN "Traps" at its centre.

Every change of an order record is a compare-and-set on its status and revision
(``GatewayStore.transition``): an admitted order moves ACCEPTED -> SENDING (with the
exchange-clock time) before the request leaves, and only the handler whose move succeeds
sends; a handler that loses (another loop or gateway acted on the same record since it
was read) sends nothing and leaves the entry pending, to be re-read and resolved by query.
So one client order id is sent by at most one handler, in any number of gateways.
Its answer ends it (FILLED/EXPIRED/REJECTED...), puts it on the book (OPEN,
followed by the follower), or leaves the outcome unknown (timeout, 5xx, -1006, -1007,
reset after sending): the record becomes UNKNOWN, the intent stays pending, and every
later attempt first asks the exchange for the client order id. "Order does not exist"
allows a resend only once the exchange clock has passed ``timestamp + recvWindow``.
Such a resend moves UNKNOWN/SENDING -> SENDING directly (never through ACCEPTED).
Nothing is resent on any other path. When the fleet's weight or order budget is spent,
the order is not sent (SENDING -> ACCEPTED) and the delay is reported in ``stream:events``.
An authentication refusal means the order was not executed: SENDING -> ACCEPTED, the
entry stays pending and :attr:`LiveExecutor.auth_failure` says why until the runtime
clears it.
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
        # "exchange refused the credentials: <code> <message>" after an AuthError on a
        # send ('' when fine); the runtime clears it once the credentials work again
        self.auth_failure = ""
        # A SENDING record's handler may still be inside the request: it can stamp it up
        # to one HTTP timeout (a -1021 resync, then the re-stamp) plus a budget wait of
        # 5 s after ``sent_at``, so "no such order" proves nothing before that has passed.
        timeout = getattr(getattr(client.http, "timeout", None), "read", None) or 5.0
        self.in_flight_ms = int((2 * timeout + 5.0) * 1000)

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

        # every job runs to its end before anything is raised: no send is left running
        # unowned while the consumer handles the batch again entry by entry
        results = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
        await self.flush_events()
        outcomes: list[Outcome | None] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            outcomes.append(result)
        return outcomes

    async def _one(self, job: Job) -> Outcome | None:
        status = job.record.get("status", "")
        if status in (RecordStatus.SENDING, RecordStatus.UNKNOWN):
            return await self.resolve(job)
        return await self._send(job)

    async def _move(self, job: Job, status: RecordStatus, **fields: Any) -> bool:
        """Compare-and-set the job's record from the state it was read in (``job.record``
        follows every successful move); False when another handler moved it first."""
        result = await self.store.transition(job.cid, job.record, status.value, now_ms(), **fields)
        if not result.ok:
            log.info(
                "order.transition_lost",
                cid=job.cid,
                to=status.value,
                now=result.status or result.outcome,
            )
        return result.ok

    async def _send(self, job: Job) -> Outcome | None:
        intent, cid, order = job.intent, job.cid, job.order
        if order is None or job.rules is None:
            return Outcome(
                report=rejection(intent, cid, "intent no longer valid", mode=MODE, now_ms=now_ms())
            )
        params = order.wire_params(job.rules, cid)
        # From ACCEPTED, or from SENDING/UNKNOWN for a resend the not-found rule proved safe.
        if not await self._move(
            job,
            RecordStatus.SENDING,
            sent_at=self.client.now_ms(),
            recv_window=self.client.recv_window_ms,
        ):
            return None  # another handler owns this order: the entry stays pending
        try:
            full, _timestamp = await self.client.new_order(params)
        except OrderDelayed as exc:
            await self._move(job, RecordStatus.ACCEPTED)  # never sent
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
            if not await self._unknown(job, "duplicate client order id"):
                return None
            return await self.resolve(job)
        except (RetryableError, RateLimitedError) as exc:
            await self._move(job, RecordStatus.ACCEPTED)  # not executed
            log.warning("order.not_sent", cid=cid, error=str(exc))
            return None
        except AuthError as exc:
            # the credentials were refused, so the order was not executed: it stays
            # admitted and pending until the credentials work again
            await self._move(job, RecordStatus.ACCEPTED)
            self.auth_failure = f"exchange refused the credentials: {exc.code} {exc.message}"
            log.error("exchange.auth_failed", cid=cid, code=exc.code)
            self.event(
                "exchange.auth_failed",
                self.auth_failure,
                level="error",
                bot_id=intent.bot_id,
                symbol=intent.symbol,
                client_order_id=cid,
            )
            return None
        except RejectedError as exc:
            return Outcome(
                report=rejection(
                    intent, cid, f"exchange: {exc.code} {exc.message}", mode=MODE, now_ms=now_ms()
                )
            )
        return self._outcome(job, full)

    async def _unknown(self, job: Job, why: str) -> bool:
        log.warning("order.outcome_unknown", cid=job.cid, why=why)
        # the request's timestamp is no later than now: the not-found rule counts from here
        return await self._move(job, RecordStatus.UNKNOWN, sent_at=self.client.now_ms())

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
            in_flight = self.in_flight_ms if job.record.get("status") == RecordStatus.SENDING else 0
            verdict = after_not_found(self.client.now_ms(), sent_at, window, in_flight)
            if verdict is NotFoundVerdict.WAIT:
                return None
            if reconciling:
                self.note_difference(
                    job.cid,
                    f"{job.record.get('status')} here but never reached the exchange; it will be sent again",
                )
            if job.order is None:
                # proven never executed; the consumer re-prepares and sends it
                await self._move(job, RecordStatus.ACCEPTED)
                return None
            return await self._send(job)  # SENDING/UNKNOWN -> SENDING, by compare-and-set
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
