"""Intent -> order -> one terminal report: the gateway's hot path, one batch at a time.

For a batch of stream entries: decode (dead-letter what does not), read the order
records (a final record means the intent is done: acknowledge; a copy on a different
stream entry than the admitted one gets the stored report again), size
and validate the new intents, admit them atomically (``admit.lua``: fencing, rate
rails, risk), refuse the rest (``reject.lua``), execute the admitted ones through the
mode's executor and complete them (``finalize.lua``). Each Redis step is one pipeline
for the whole batch. The caller acknowledges the returned entry ids only after all of
this is written, so a crash anywhere leaves the entries pending for a restart or for
another instance's XAUTOCLAIM, and the order records make the rerun idempotent.

An executor with an ``immediate(job, now)`` method (paper) knows an order's outcome
before admission: those intents take ``trade.lua``, which admits, refuses or completes
and acknowledges each of them, one atomic call for the whole batch (so they are not
returned for XACK).

A stale-epoch copy of an intent is answered with a non-final REJECTED notice and leaves
no record, so the adopting runner's re-send under the new epoch is placed normally.
An entry that cannot be handled at all (:meth:`Processor.give_up`) ends as a dead letter
and, when it decodes and was never sent, a REJECTED report with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from services.gateway import rails as rails_mod
from services.gateway.orders import FINAL, RecordField, RecordStatus, rejection
from services.gateway.rails import Rails, static_rail_violation
from services.gateway.risk_state import Position
from services.gateway.rules_cache import RulesCache
from services.gateway.sizing import IntentRejected, PreparedOrder, prepare
from services.gateway.store import Ending, GatewayStore, TradeEntry
from shared import keys
from shared.binance.rules import SymbolRules
from shared.bots import client_order_id
from shared.latency import LatencyHistogram
from shared.logging import get_logger
from shared.messages import (
    Event,
    ExecutionReport,
    MessageDecodeError,
    OrderIntent,
    Side,
    decode_as,
    encode_json,
)
from shared.money import AMOUNT_MAX
from shared.redis import now_ms
from shared.streams import dead_letter, emit_event, publish_nowait

log = get_logger(__name__)
EVENTS_MAXLEN = 10_000


@dataclass(slots=True)
class Job:
    """One admitted (or resumed) intent on its way to the exchange."""

    intent: OrderIntent
    cid: str
    order: PreparedOrder | None  # None: admitted earlier but no longer valid
    rules: SymbolRules | None
    price: Decimal | None
    record: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an executor made of a job. ``report.final`` False: the order rests."""

    report: ExecutionReport
    position_qty: Decimal = Decimal(0)
    quote_amount: Decimal = Decimal(0)
    balance_check: tuple[str, Decimal] | None = None
    balance_deltas: dict[str, Decimal] | None = None
    rejection: ExecutionReport | None = None


class Executor(Protocol):
    """Places admitted orders (paper engine or signed REST). ``None`` for a job whose
    outcome is still unknown: its entry stays pending and is retried later."""

    async def execute_many(self, jobs: Sequence[Job]) -> list[Outcome | None]: ...


@dataclass
class Figures:
    """Counters for the health key."""

    intents: int = 0
    reports: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    dead_letters: int = 0
    halts: int = 0
    republished: int = 0
    # An intent's creation by the runner to its report (shared/latency.py).
    signal_to_ack: LatencyHistogram = field(default_factory=LatencyHistogram)

    def acked(self, intent: OrderIntent, now: int) -> None:
        if intent.created_at > 0:
            self.signal_to_ack.observe(max(0, now - intent.created_at))


class Processor:
    def __init__(
        self,
        store: GatewayStore,
        rules: RulesCache,
        rails: Rails,
        executor: Executor,
        *,
        service: str = "gateway",
    ) -> None:
        self.store = store
        self.redis = store.redis
        self.rules = rules
        self.rails = rails
        self.executor = executor
        self.service = service
        self.figures = Figures()
        # entries already announced as unresolvable-but-kept (one event each)
        self._kept_noted: set[str] = set()

    async def handle(self, entries: Sequence[tuple[Any, dict[Any, Any]]]) -> list[Any]:
        """Process stream entries; returns the entry ids that may now be acknowledged."""
        ack: list[Any] = []
        # client order id -> (intent, its JSON, every entry id carrying it in this batch)
        batch: dict[str, tuple[OrderIntent, bytes, list[Any]]] = {}
        for entry_id, fields in entries:
            try:
                intent = decode_as(fields, OrderIntent)
            except MessageDecodeError as exc:
                await dead_letter(
                    self.redis,
                    keys.ORDER_INTENTS,
                    entry_id,
                    fields,
                    exc.reason,
                    service=self.service,
                )
                self.figures.dead_letters += 1
                ack.append(entry_id)
                continue
            self.figures.intents += 1
            cid = client_order_id(intent.intent_id)
            if cid in batch:  # the same intent twice in one batch shares one fate
                self.figures.duplicates += 1
                kept, _data, ids = batch[cid]
                if intent.epoch > kept.epoch:
                    # a re-send under a newer epoch (the adopting runner) speaks for the
                    # intent: a stale copy met in the same batch must not fence it out
                    raw = fields.get(b"data", fields.get("data"))
                    data = raw if isinstance(raw, bytes) else encode_json(intent)
                    batch[cid] = (intent, data, [entry_id, *ids])
                else:
                    ids.append(entry_id)
            else:
                raw = fields.get(b"data", fields.get("data"))
                data = raw if isinstance(raw, bytes) else encode_json(intent)
                batch[cid] = (intent, data, [entry_id])
        if not batch:
            return ack

        cids = list(batch)
        symbols = {batch[cid][0].symbol for cid in cids}
        sells = [(i.bot_id, i.symbol) for i, _d, _e in batch.values() if i.side is Side.SELL]
        records, prices, positions = await self.store.records_and_prices(
            cids, sorted(symbols), sells
        )
        rules = await self.rules.get_many(symbols)
        now = now_ms()

        new: list[tuple[str, PreparedOrder, str]] = []
        refused: list[tuple[str, str, str]] = []  # cid, reason, kind
        jobs: list[Job] = []
        repeats: list[tuple[str, Any]] = []  # (cid, entry id) of repeated final intents
        for cid, record in zip(cids, records, strict=True):
            intent, _raw, entry_ids = batch[cid]
            status = record.get("status")
            if status in FINAL or status == RecordStatus.OPEN:
                # done (its report was published with the final state), or resting and
                # owned by the follower; a copy on another stream entry than the admitted
                # one gets the stored report again (once per entry)
                self.figures.duplicates += 1
                first = record.get("entry", "")
                if status in FINAL and first:  # (a record restored by reconciliation has none)
                    repeats.extend((cid, e) for e in entry_ids if _text(e) != first)
                ack.extend(entry_ids)
                continue
            symbol_rules = rules.get(intent.symbol)
            price = prices.get(intent.symbol)
            try:
                order: PreparedOrder | None = check_range(prepare(intent, symbol_rules, price))
            except IntentRejected as exc:
                if not status:
                    refused.append((cid, exc.reason, "invalid"))
                    continue
                order = None  # admitted before; the executor decides (it may be on the exchange)
            if status:
                jobs.append(Job(intent, cid, order, symbol_rules, price, record))
                continue
            assert order is not None
            new.append(
                (cid, order, static_rail_violation(self.rails, intent.symbol, order.notional))
            )

        if repeats:
            await self._republish(repeats)
        immediate = getattr(self.executor, "immediate", None)
        if new and immediate is not None:
            new, moved = await self._trade(new, batch, rules, prices, positions, immediate, now)
            jobs += moved
        if new:
            async with self.redis.pipeline(transaction=False) as pipe:
                for cid, order, verdict in new:
                    intent, raw, ids = batch[cid]
                    self.store.queue_admit(
                        pipe, intent, raw, cid, order, verdict, self.rails, now, ids[0]
                    )
                replies = await pipe.execute()
            for (cid, order, _verdict), reply in zip(new, replies, strict=True):
                intent, _raw, entry_ids = batch[cid]
                admission = self.store.parse_admission(reply)
                if admission.outcome == "ok":
                    # the record as admit.lua wrote it: the executor's first
                    # compare-and-set starts from it
                    admitted = {"status": RecordStatus.ACCEPTED.value, "rev": "0"}
                    jobs.append(
                        Job(
                            intent,
                            cid,
                            order,
                            rules.get(intent.symbol),
                            prices.get(intent.symbol),
                            admitted,
                        )
                    )
                elif admission.outcome == "exists":  # another instance is on this intent
                    self.figures.duplicates += 1
                    ack.extend(entry_ids)
                else:
                    refused.append((cid, admission.reason, admission.kind))

        if refused:
            await self._refuse(
                [
                    (batch[cid][0], batch[cid][1], cid, r, k, batch[cid][2][0])
                    for cid, r, k in refused
                ],
                now,
            )
            for cid, _r, _k in refused:
                ack.extend(batch[cid][2])
        if jobs:
            done = await self._execute(jobs)
            for cid in done:
                ack.extend(batch[cid][2])
        return ack

    async def _refuse(
        self, refused: list[tuple[OrderIntent, bytes, str, str, str, Any]], now: int
    ) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for intent, raw, cid, reason, kind, entry_id in refused:
                report = rejection(intent, cid, reason, mode=self.store.mode, now_ms=now)
                if kind == "fence":
                    # a stale-epoch copy: a notice, not the intent's end (no record)
                    self.store.queue_notice(pipe, msgspec.structs.replace(report, final=False))
                else:
                    self.store.queue_reject(pipe, raw, cid, report, now, entry_id)
            replies = await pipe.execute()
            for (intent, _raw, cid, reason, kind, _e), reply in zip(refused, replies, strict=True):
                if kind == "fence" or (reply and _text(reply[0]) == "rejected"):
                    self._note_refusal(pipe, intent, cid, reason, kind, now)
            await pipe.execute()

    async def _republish(self, repeats: list[tuple[str, Any]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid, entry_id in repeats:
                self.store.queue_republish(pipe, cid, entry_id)
            replies = await pipe.execute()
        for (cid, entry_id), reply in zip(repeats, replies, strict=True):
            if reply:
                self.figures.republished += 1
                log.info("intent.report_republished", cid=cid, entry_id=_text(entry_id))

    def _note_refusal(
        self, pipe: Any, intent: OrderIntent, cid: str, reason: str, kind: str, now: int
    ) -> None:
        """Count a published refusal and, for rails, risk, halts and fencing, queue the
        event people see on ``stream:events``."""
        self.figures.reports += 1
        if kind == "halt-set":  # this refusal found the daily loss past its limit
            kind = "halt"
            self.figures.halts += 1
            halt = reason.removeprefix("portfolio halted: ")
            publish_nowait(
                pipe, keys.EVENTS, halt_event(halt, intent, self.service, now), maxlen=EVENTS_MAXLEN
            )
        label = rails_mod.rail_name(reason) if kind in ("rail", "risk") else kind
        self.figures.rejections[label] += 1
        log.info("intent.rejected", intent_id=intent.intent_id, cid=cid, kind=kind, reason=reason)
        if kind not in ("rail", "risk", "halt", "fence"):
            return
        publish_nowait(
            pipe,
            keys.EVENTS,
            Event(
                kind="order.rejected" if kind != "rail" else "guard_rail",
                message=f"intent refused: {reason}",
                level="warning",
                service=self.service,
                bot_id=intent.bot_id,
                symbol=intent.symbol,
                details={
                    "kind": kind,
                    "rail": label,
                    "reason": reason,
                    "intent_id": intent.intent_id,
                    "client_order_id": cid,
                },
                ts=now,
            ),
            maxlen=EVENTS_MAXLEN,
        )

    async def _trade(
        self,
        new: list[tuple[str, PreparedOrder, str]],
        batch: dict[str, tuple[OrderIntent, bytes, list[Any]]],
        rules: dict[str, SymbolRules | None],
        prices: dict[str, Decimal | None],
        positions: dict[tuple[str, str], Position],
        immediate: Any,
        now: int,
    ) -> tuple[list[tuple[str, PreparedOrder, str]], list[Job]]:
        """The fast path for outcomes known before admission (paper fills, expiries):
        one ``trade.lua`` call for the whole batch admits, completes and acknowledges each
        intent (atomically for the batch). Returns the intents that still need the
        two-step path (orders that will rest), and the admitted sells whose position moved
        before their completion (they complete as jobs, with the position read again)."""
        rest: list[tuple[str, PreparedOrder, str]] = []
        moved: list[Job] = []
        traded: list[tuple[str, Outcome]] = []
        items: list[TradeEntry] = []
        by_cid: dict[str, Job] = {}
        for cid, order, verdict in new:
            intent, raw, entry_ids = batch[cid]
            job = Job(intent, cid, order, rules.get(intent.symbol), prices.get(intent.symbol))
            outcome: Outcome | None = immediate(job, now)
            if outcome is None or not outcome.report.final:
                rest.append((cid, order, verdict))
                continue
            items.append(
                self.store.trade_item(
                    entry_ids,
                    intent,
                    raw,
                    cid,
                    order,
                    verdict,
                    self.rails,
                    now,
                    report=outcome.report,
                    position_qty=outcome.position_qty,
                    quote_amount=outcome.quote_amount,
                    balance_check=outcome.balance_check,
                    balance_deltas=outcome.balance_deltas,
                    rejection_reason=(
                        outcome.rejection.reason if outcome.rejection is not None else None
                    ),
                )
            )
            traded.append((cid, outcome))
            by_cid[cid] = job
        if not traded:
            return rest, moved
        replies = await self.store.trade_many(items, now, positions)
        events: list[Event] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for (cid, outcome), reply in zip(traded, replies, strict=True):
                intent = batch[cid][0]
                what, status, detail = reply
                if what == "done":
                    self.figures.reports += 1
                    self.figures.acked(intent, now)
                    if status == RecordStatus.REJECTED:
                        self.figures.rejections[_reason_label(outcome)] += 1
                    if detail:
                        self.figures.halts += 1
                        events.append(halt_event(detail, intent, self.service, now))
                elif what == "rejected":
                    self._note_refusal(pipe, intent, cid, detail, status, now)
                elif what == "conflict":  # admitted; its figures are computed again
                    job = by_cid[cid]
                    job.record = {  # as admit.lua wrote it (see the two-step path)
                        RecordField.STATUS.value: RecordStatus.ACCEPTED.value,
                        RecordField.REV.value: "0",
                    }
                    moved.append(job)
                else:
                    self.figures.duplicates += 1
                    if detail != "1":  # another instance holds it: our copy is redundant
                        pipe.xack(keys.ORDER_INTENTS, keys.GATEWAY_GROUP, *batch[cid][2])
            for event in events:
                publish_nowait(pipe, keys.EVENTS, event, maxlen=EVENTS_MAXLEN)
            if len(pipe):
                await pipe.execute()
        return rest, moved

    async def _execute(self, jobs: list[Job]) -> list[str]:
        """Run the jobs through the executor and record their outcomes; returns the
        client order ids whose entries may be acknowledged."""
        outcomes = await self.executor.execute_many(jobs)
        now = now_ms()
        resting: list[Job] = []
        ending: list[tuple[Job, Outcome]] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job, outcome in zip(jobs, outcomes, strict=True):
                if outcome is None:
                    continue  # outcome unknown: the entry stays pending
                if outcome.report.final:
                    ending.append((job, outcome))
                else:  # compare-and-set from the state the executor left it in
                    self.store.queue_rest(pipe, job.cid, outcome.report, now, job.record)
                    resting.append(job)
            replies = await pipe.execute() if resting else []
        done: list[str] = []
        for job, reply in zip(resting, replies, strict=True):
            moved = self.store.parse_transition(reply)
            if moved.ok or moved.outcome == "final":
                log.info("order.resting", cid=job.cid, intent_id=job.intent.intent_id)
                self.figures.acked(job.intent, now)
                done.append(job.cid)
            else:  # another handler moved the record on: it stays pending, re-read later
                log.info("order.transition_lost", cid=job.cid, to="OPEN", now=moved.status)
        completions = await self.store.finalize_many(
            [ending_of(job.cid, outcome) for job, outcome in ending], now
        )
        events: list[Event] = []
        for (job, outcome), completion in zip(ending, completions, strict=True):
            if completion.outcome == "conflict":
                continue  # its position kept moving: the entry stays pending
            done.append(job.cid)
            if completion.outcome == "done":
                self.figures.reports += 1
                self.figures.acked(job.intent, now)
                if completion.status == RecordStatus.REJECTED:
                    self.figures.rejections[_reason_label(outcome)] += 1
                log.debug(  # the report on stream:executions is the record
                    "order.final",
                    cid=job.cid,
                    intent_id=job.intent.intent_id,
                    status=completion.status,
                )
            if completion.halt_reason:
                self.figures.halts += 1
                events.append(halt_event(completion.halt_reason, job.intent, self.service, now))
        if events:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    publish_nowait(pipe, keys.EVENTS, event, maxlen=EVENTS_MAXLEN)
                await pipe.execute()
        return done

    async def give_up(self, entry_id: Any, fields: dict[Any, Any], reason: str) -> bool:
        """End an entry that cannot be handled (its handling raised, or it was delivered
        too many times): a dead letter with ``reason``, an ``intent.dead_lettered`` event
        and, when the intent decodes and was never sent, its REJECTED report. Returns
        whether the entry may be acknowledged: an order that may be on the exchange
        (record SENDING/UNKNOWN) is never abandoned -- it stays pending and keeps being
        resolved, and an event says so (once per entry)."""
        now = now_ms()
        try:
            intent = decode_as(fields, OrderIntent)
        except MessageDecodeError as exc:
            reason = f"{reason}; {exc.reason}"
            intent = None
        cid = client_order_id(intent.intent_id) if intent is not None else ""
        record = await self.store.record(cid) if cid else {}
        status = record.get("status", "")
        if status in (RecordStatus.SENDING, RecordStatus.UNKNOWN):
            key = _text(entry_id)
            if key not in self._kept_noted:
                if len(self._kept_noted) > 10_000:
                    self._kept_noted.clear()
                self._kept_noted.add(key)
                log.warning("intent.kept_unresolved", cid=cid, status=status, reason=reason)
                await emit_event(
                    self.redis,
                    _entry_event(
                        "intent.unresolved",
                        f"order {cid} may be on the exchange ({status}): kept and resolved"
                        f" by query ({reason})",
                        intent,
                        self.service,
                        now,
                        entry_id=key,
                        client_order_id=cid,
                        reason=reason,
                    ),
                )
            return False
        if intent is not None and not status:
            raw = fields.get(b"data", fields.get("data"))
            data = raw if isinstance(raw, bytes) else encode_json(intent)
            report = rejection(intent, cid, reason, mode=self.store.mode, now_ms=now)
            async with self.redis.pipeline(transaction=False) as pipe:
                self.store.queue_reject(pipe, data, cid, report, now, entry_id)
                await pipe.execute()
        elif intent is not None and status == RecordStatus.ACCEPTED:
            # admitted, never sent: end it so its reservation is released -- only if it
            # is still ACCEPTED (a sender moves it to SENDING first, atomically)
            report = rejection(intent, cid, reason, mode=self.store.mode, now_ms=now)
            [completion] = await self.store.finalize_many(
                [Ending(cid, report, only_from=RecordStatus.ACCEPTED.value)], now
            )
            if completion.outcome == "moved":
                return await self.give_up(entry_id, fields, reason)  # look again
        await dead_letter(
            self.redis, keys.ORDER_INTENTS, entry_id, fields, reason, service=self.service
        )
        self.figures.dead_letters += 1
        await emit_event(
            self.redis,
            _entry_event(
                "intent.dead_lettered",
                f"intent entry dead-lettered: {reason}",
                intent,
                self.service,
                now,
                entry_id=_text(entry_id),
                client_order_id=cid,
                reason=reason,
                record=status or "none",
            ),
        )
        return True


def _entry_event(
    kind: str, message: str, intent: OrderIntent | None, service: str, now: int, **details: Any
) -> Event:
    return Event(
        kind=kind,
        message=message,
        level="warning",
        service=service,
        bot_id=intent.bot_id if intent else None,
        symbol=intent.symbol if intent else None,
        details=details,
        ts=now,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ending_of(cid: str, outcome: Outcome) -> Ending:
    """What ``finalize.lua`` records for an outcome."""
    return Ending(
        cid,
        outcome.report,
        position_qty=outcome.position_qty,
        quote_amount=outcome.quote_amount,
        balance_check=outcome.balance_check,
        balance_deltas=outcome.balance_deltas,
        rejection=outcome.rejection,
    )


def check_range(order: PreparedOrder) -> PreparedOrder:
    """Refuse an order whose amounts the scripts cannot hold (shared/money.py; sizing
    has made them finite)."""
    for amount in (order.quantity, order.notional):
        if amount is not None and not abs(amount) < AMOUNT_MAX:
            raise IntentRejected(f"amount {amount} out of range (|x| < {AMOUNT_MAX})")
    return order


def halt_event(reason: str, intent: OrderIntent | None, service: str, now: int) -> Event:
    return Event(
        kind="risk.halt",
        message=f"trading halted: {reason}",
        level="error",
        service=service,
        bot_id=intent.bot_id if intent else None,
        symbol=intent.symbol if intent else None,
        details={"reason": reason},
        ts=now,
    )


def _reason_label(outcome: Outcome) -> str:
    reason = outcome.report.reason if outcome.report.status == "REJECTED" else ""
    if outcome.rejection is not None and not reason:
        reason = outcome.rejection.reason
    return reason.partition(":")[0] or "rejected"
