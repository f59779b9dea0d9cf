"""Live start-up reconciliation: before the first new intent, the order records and the
exchange are made to agree, and every difference is a ``reconcile.difference`` event
(DESIGN "Traps": AOF ``everysec`` can lose the last second of writes).

Every record it touches ends, or is handed to the path that will end it:

- an admitted, unended record (``orders:active:live``) in SENDING / UNKNOWN / OPEN is
  queried by client order id and completed if it ended;
- a record whose intent entry is gone from the stream (trimmed, deleted, lost) has no
  consumer left to finish it: an ACCEPTED one is sent, a SENDING / UNKNOWN one the
  exchange never saw (not found past ``timestamp + recvWindow``) is sent once, both
  through the executor's normal compare-and-set send path; an intent that can no longer
  become an order (symbol gone, filters) is rejected with the reason. One still inside
  its window, or delayed by the fleet budget, is kept and settled again by the follower
  (:meth:`Reconciler.retry_orphans`) until it ends;
- an intent still waiting in the stream with no record is looked up on the exchange: a
  run whose writes Redis lost may have placed it (its record is restored, its report
  published) -- Binance would accept the client order id again once the first order
  filled;
- an open ``bf-`` order on the exchange with no record here follows
  ``BOTFLEET_GATEWAY_UNKNOWN_ORDER_POLICY``: ``report`` (left alone), ``cancel``, or
  ``adopt`` (recorded under the intent id ``adopted:<cid>`` of the bot ``adopted``,
  followed until it ends and reported like any other).
"""

from __future__ import annotations

from decimal import Decimal

from services.gateway.exchange import ExchangeClient
from services.gateway.live_executor import LiveExecutor
from services.gateway.orders import FINAL, RecordStatus, rejection
from services.gateway.processor import Job, Outcome, Processor
from services.gateway.settings import UnknownOrderPolicy
from services.gateway.sizing import IntentRejected, prepare
from services.gateway.store import GatewayStore
from shared.binance.errors import BinanceError, NoSuchOrderError
from shared.binance.schemas import QueryOrder
from shared.bots import client_order_id
from shared.logging import get_logger
from shared.messages import (
    MessageDecodeError,
    OrderIntent,
    OrderType,
    Side,
    decode_as,
    encode_json,
)
from shared.redis import now_ms

log = get_logger(__name__)
MODE = "live"
ADOPTED_BOT = "adopted"  # the bot id of orders adopted from the exchange
STUCK = frozenset({RecordStatus.ACCEPTED, RecordStatus.SENDING, RecordStatus.UNKNOWN})


class Reconciler:
    def __init__(
        self,
        client: ExchangeClient,
        store: GatewayStore,
        executor: LiveExecutor,
        *,
        policy: UnknownOrderPolicy = UnknownOrderPolicy.REPORT,
    ) -> None:
        self.client = client
        self.store = store
        self.executor = executor
        self.policy = policy
        self.orphans: set[str] = set()  # records with no intent entry, not yet ended

    async def run(self, processor: Processor) -> None:
        """Start-up reconciliation (see the module docstring)."""
        waiting = await self._waiting()
        cids = await self.store.active()
        records = await self.store.records(cids) if cids else []
        symbols = {symbol_of(r) for r in records if r.get("intent")} | {
            i.symbol for i, _raw in waiting.values()
        }
        await processor.rules.get_many({s for s in symbols if s})
        checked = 0
        for cid, record in zip(cids, records, strict=True):
            status = record.get("status", "")
            if not record or status in FINAL:
                continue
            if status in STUCK and cid not in waiting:
                checked += 1
                self.orphans.add(cid)
                await self._settle_orphan(processor, cid, record, first=True)
                continue
            if status == RecordStatus.ACCEPTED:
                continue  # never sent: its pending intent will be processed normally
            checked += 1
            job = job_from_record(cid, record, processor)
            outcome = await self.executor.resolve(job, reconciling=True)
            if outcome is not None and outcome.report.final:
                await self.executor.complete(processor, job, outcome)
        adopted = await self._find_lost_records(processor, waiting)
        venue_open = await self._unknown_open_orders(processor, set(cids))
        await self.executor.flush_events()
        log.info(
            "reconcile.done",
            checked=checked,
            adopted=adopted,
            venue_open=venue_open,
            orphans=len(self.orphans),
        )

    async def _waiting(self) -> dict[str, tuple[OrderIntent, bytes]]:
        """The intents still in the stream (pending or never delivered), by client order id."""
        by_cid: dict[str, tuple[OrderIntent, bytes]] = {}
        for _entry_id, fields in await self.store.waiting_intents():
            raw = fields.get(b"data", fields.get("data"))
            try:
                intent = decode_as(fields, OrderIntent)
            except MessageDecodeError:
                continue  # the consumer dead-letters it
            data = raw if isinstance(raw, bytes) else encode_json(intent)
            by_cid.setdefault(client_order_id(intent.intent_id), (intent, data))
        return by_cid

    # --- records whose intent entry is gone -----------------------------------------------
    async def retry_orphans(self, processor: Processor) -> None:
        """Settle again what start-up could not end yet (inside the not-found window,
        delayed by the fleet budget, the exchange unreachable)."""
        if not self.orphans:
            return
        cids = sorted(self.orphans)
        for cid, record in zip(cids, await self.store.records(cids), strict=True):
            if not record or record.get("status") not in STUCK:
                self.orphans.discard(cid)  # ended, or resting and followed
                continue
            await self._settle_orphan(processor, cid, record, first=False)

    async def _settle_orphan(
        self, processor: Processor, cid: str, record: dict[str, str], *, first: bool
    ) -> None:
        job = job_from_record(cid, record, processor)
        status = record.get("status", "")
        reason = ""
        try:
            prices = await self.store.prices([job.intent.symbol])
            job.order = prepare(job.intent, job.rules, prices.get(job.intent.symbol))
        except IntentRejected as exc:
            reason = exc.reason
        if first:
            self.executor.note_difference(
                cid,
                f"{status} here and its intent entry is gone from the stream: "
                + ("settling it with the exchange" if not reason else f"cannot send it ({reason})"),
                symbol=job.intent.symbol,
                bot_id=job.intent.bot_id,
            )
        if status == RecordStatus.ACCEPTED and job.order is not None:
            [outcome] = await self.executor.execute_many([job])  # CAS ACCEPTED -> SENDING
        elif status != RecordStatus.ACCEPTED:
            # query first; "not found" past the window sends it (job.order set) by CAS,
            # or (no order) moves the record back to ACCEPTED: proven never executed
            outcome = await self.executor.resolve(job, reconciling=job.order is not None)
        else:
            outcome = None
        if outcome is not None:
            await self._finish(processor, job, outcome)
            self.orphans.discard(cid)
            return
        if job.order is None and job.record.get("status") == RecordStatus.ACCEPTED:
            report = rejection(
                job.intent,
                cid,
                f"reconcile: {reason or 'cannot be sent'}",
                mode=MODE,
                now_ms=now_ms(),
            )
            await self.executor.complete(processor, job, Outcome(report=report))
            self.orphans.discard(cid)
            log.warning("reconcile.orphan_rejected", cid=cid, reason=reason)

    async def _finish(self, processor: Processor, job: Job, outcome: Outcome) -> None:
        if outcome.report.final:
            await self.executor.complete(processor, job, outcome)
            return
        async with self.store.redis.pipeline(transaction=False) as pipe:
            self.store.queue_rest(pipe, job.cid, outcome.report, now_ms())
            await pipe.execute()

    # --- intents with no record -----------------------------------------------------------
    async def _find_lost_records(
        self, processor: Processor, waiting: dict[str, tuple[OrderIntent, bytes]]
    ) -> int:
        """An intent still waiting in the stream with no order record may have been placed
        by a run whose writes Redis lost (AOF everysec). Ask the exchange for each such
        client order id before it is processed: Binance would accept the id again once
        the first order filled (DESIGN "Traps"). Found orders get their record back and
        their report; the rest are processed normally."""
        if not waiting:
            return 0
        cids = list(waiting)
        records = await self.store.records(cids)
        adopted = 0
        for cid, record in zip(cids, records, strict=True):
            if record:
                continue
            intent, raw = waiting[cid]
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
            await self._resolve_restored(processor, cid, intent)
        return adopted

    async def _resolve_restored(self, processor: Processor, cid: str, intent: OrderIntent) -> None:
        job = Job(
            intent,
            cid,
            None,
            processor.rules.get(intent.symbol),
            None,
            await self.store.record(cid),
        )
        outcome = await self.executor.resolve(job)
        if outcome is not None:
            await self._finish(processor, job, outcome)

    # --- open bf- orders nobody here knows -------------------------------------------------
    async def _unknown_open_orders(self, processor: Processor, known: set[str]) -> int:
        try:
            venue_open = await self.client.open_orders()
        except BinanceError as exc:
            log.warning("reconcile.open_orders_failed", error=str(exc))
            return 0
        for order in venue_open:
            cid = order.clientOrderId
            if not cid.startswith("bf-") or cid in known:
                continue
            record = await self.store.record(cid)
            if record.get("status") == RecordStatus.OPEN:
                continue  # restored above, followed from now on
            if record:
                self.executor.note_difference(
                    cid,
                    f"open on the exchange ({order.status}) but {record.get('status')} here",
                    symbol=order.symbol,
                )
                continue
            await self._apply_policy(processor, order)
        return len(venue_open)

    async def _apply_policy(self, processor: Processor, order: QueryOrder) -> None:
        cid = order.clientOrderId
        what = f"open on the exchange ({order.status}) but unknown here"
        details = {"symbol": order.symbol, "policy": self.policy.value}
        if self.policy is UnknownOrderPolicy.CANCEL:
            try:
                await self.client.cancel_order(order.symbol, cid)
            except BinanceError as exc:
                self.executor.note_difference(
                    cid, f"{what}: cancel failed ({exc}), left open", action="none", **details
                )
                return
            self.executor.note_difference(
                cid, f"{what}: canceled (policy cancel)", action="canceled", **details
            )
            return
        if self.policy is UnknownOrderPolicy.ADOPT:
            intent = adopted_intent(order)
            if await self.store.adopt(cid, encode_json(intent), now_ms()):
                self.executor.note_difference(
                    cid,
                    f"{what}: adopted as intent {intent.intent_id}, followed until it ends",
                    action="adopted",
                    **details,
                )
                await self._resolve_restored(processor, cid, intent)
                return
        self.executor.note_difference(
            cid, f"{what}: reported, left alone (policy report)", action="reported", **details
        )


def adopted_intent(order: QueryOrder) -> OrderIntent:
    """The intent an adopted exchange order is recorded under (bot ``adopted``)."""
    limit = order.type != "MARKET" and Decimal(order.price) > 0
    return OrderIntent(
        intent_id=f"{ADOPTED_BOT}:{order.clientOrderId}",
        bot_id=ADOPTED_BOT,
        epoch=0,
        symbol=order.symbol,
        side=Side(order.side),
        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
        quantity=Decimal(order.origQty),
        price=Decimal(order.price) if limit else None,
        reason="adopted from the exchange by start-up reconciliation",
    )


def symbol_of(record: dict[str, str]) -> str:
    try:
        return decode_as({"type": "order_intent", "data": record["intent"]}, OrderIntent).symbol
    except MessageDecodeError:
        return ""


def job_from_record(cid: str, record: dict[str, str], processor: Processor) -> Job:
    intent = decode_as({"type": "order_intent", "data": record["intent"]}, OrderIntent)
    return Job(intent, cid, None, processor.rules.get(intent.symbol), None, record)
