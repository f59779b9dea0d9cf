"""The order record of one intent and its state machine (pure).

``order:{client_order_id}`` (hash, written only by the gateway) records each step:

===============  ===========================================================
field            meaning
===============  ===========================================================
status           ACCEPTED -> SENDING -> (OPEN | UNKNOWN) -> final
                 (FILLED, CANCELED, EXPIRED, REJECTED)
intent           the OrderIntent as JSON
cid, mode        client order id; paper or live
reserved         quote notional reserved in risk:state at admission (integer
                 units of 1e-8, :mod:`shared.money`)
opened           1 if admission counted a new open position
reason           the reason of a refusal before admission (status REJECTED)
instance         the gateway instance that admitted it
adopted          1 if reconciliation recreated it from the exchange
created_at       epoch ms of admission; updated_at: of the last change
sent_at          exchange-clock timestamp of the last order request
recv_window      its recvWindow (ms)
exchange_order_id  the venue's orderId once known
report           the terminal ExecutionReport as JSON (written with the report)
report_id        its stream:executions entry id
rev              revision, +1 on every compare-and-set transition (transition.lua)
entry            the intents-stream entry that was admitted (or refused)
answered:{entry} 1 once a repeat on that entry got the stored report again
===============  ===========================================================

The field names are :class:`RecordField`; the scripts receive them from it.

ACCEPTED means "never sent": resuming it sends. SENDING and UNKNOWN mean "may be on the
exchange": resuming them queries by client order id first (DESIGN "Traps"), and "no
such order" only allows a resend once the exchange clock has passed
``sent_at + recv_window`` (plus a margin).
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any

from shared.binance.schemas import OrderFill, OrderFull, QueryOrder
from shared.messages import ExecutionReport, ExecutionStatus, Fill, OrderIntent


class RecordStatus(enum.StrEnum):
    ACCEPTED = "ACCEPTED"  # admitted, never sent
    SENDING = "SENDING"  # a request may be on its way
    UNKNOWN = "UNKNOWN"  # sent, outcome unknown (timeout, 5xx, -1006, -1007)
    OPEN = "OPEN"  # resting on the book, followed by the follower loop
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class RecordField(enum.StrEnum):
    """Fields of ``order:{client_order_id}`` (the table above)."""

    STATUS = "status"
    INTENT = "intent"
    CID = "cid"
    MODE = "mode"
    RESERVED = "reserved"
    OPENED = "opened"
    SENT_AT = "sent_at"
    RECV_WINDOW = "recv_window"
    EXCHANGE_ORDER_ID = "exchange_order_id"
    REPORT = "report"
    REPORT_ID = "report_id"
    REASON = "reason"
    INSTANCE = "instance"
    ADOPTED = "adopted"
    REV = "rev"
    ENTRY = "entry"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


def answered_field(entry: str) -> str:
    """The record field marking a repeat on stream entry ``entry`` as answered."""
    return f"answered:{entry}"


FINAL = frozenset(
    {RecordStatus.FILLED, RecordStatus.CANCELED, RecordStatus.EXPIRED, RecordStatus.REJECTED}
)
MAY_BE_ON_EXCHANGE = frozenset({RecordStatus.SENDING, RecordStatus.UNKNOWN, RecordStatus.OPEN})

# The venue's order statuses (§8) and what they mean for the intent.
_VENUE_FINAL = {
    "FILLED": ExecutionStatus.FILLED,
    "CANCELED": ExecutionStatus.CANCELED,
    "EXPIRED": ExecutionStatus.EXPIRED,
    "EXPIRED_IN_MATCH": ExecutionStatus.EXPIRED,
    "REJECTED": ExecutionStatus.REJECTED,
}
_VENUE_OPEN = {
    "NEW": ExecutionStatus.NEW,
    "PENDING_NEW": ExecutionStatus.NEW,
    "PARTIALLY_FILLED": ExecutionStatus.PARTIALLY_FILLED,
    "PENDING_CANCEL": ExecutionStatus.PARTIALLY_FILLED,
}
# Margin past timestamp + recvWindow before "no such order" proves the order never landed.
NOT_FOUND_MARGIN_MS = 1000


def is_final(status: str | bytes | None) -> bool:
    if status is None:
        return False
    text = status.decode() if isinstance(status, bytes) else status
    return text in FINAL


def venue_status(status: str) -> tuple[ExecutionStatus, bool]:
    """(report status, terminal?) of a venue order status; unknown statuses stay open."""
    if status in _VENUE_FINAL:
        return _VENUE_FINAL[status], True
    return _VENUE_OPEN.get(status, ExecutionStatus.NEW), False


def record_status_for(report: ExecutionReport) -> RecordStatus:
    if not report.final:
        return RecordStatus.OPEN
    if report.status is ExecutionStatus.PARTIALLY_FILLED:
        return RecordStatus.CANCELED
    return RecordStatus(report.status.value)


class NotFoundVerdict(enum.StrEnum):
    RESEND = "resend"  # the window has passed: it never reached the matching engine
    WAIT = "wait"  # still inside timestamp + recvWindow: ask again later


def after_not_found(
    exchange_now_ms: int, sent_at_ms: int, recv_window_ms: int, in_flight_ms: int = 0
) -> NotFoundVerdict:
    """What an "order does not exist" answer proves (DESIGN "Traps").

    ``in_flight_ms``: for a record still SENDING, how much later than ``sent_at`` (taken
    just before the request) the request itself may have been stamped -- its handler
    may still be inside the call (a -1021 resync and re-stamp, a budget wait); an
    UNKNOWN record's ``sent_at`` is taken after the answer, so it needs none."""
    if exchange_now_ms > sent_at_ms + in_flight_ms + recv_window_ms + NOT_FOUND_MARGIN_MS:
        return NotFoundVerdict.RESEND
    return NotFoundVerdict.WAIT


def _fills(fills: list[OrderFill]) -> tuple[Fill, ...]:
    return tuple(
        Fill(
            price=Decimal(f.price),
            qty=Decimal(f.qty),
            commission=Decimal(f.commission),
            commission_asset=f.commissionAsset,
            trade_id=f.tradeId,
        )
        for f in fills
    )


def report_for(
    intent: OrderIntent,
    client_order_id: str,
    *,
    status: ExecutionStatus,
    final: bool,
    mode: str,
    now_ms: int,
    **fields: Any,
) -> ExecutionReport:
    """An execution report of ``intent``: the intent's identity, plus what happened."""
    return ExecutionReport(
        intent_id=intent.intent_id,
        client_order_id=client_order_id,
        bot_id=intent.bot_id,
        symbol=intent.symbol,
        side=intent.side,
        status=status,
        final=final,
        mode=mode,
        is_exit=intent.is_exit,
        epoch=intent.epoch,
        ts=now_ms,
        **fields,
    )


def report_from_venue(
    intent: OrderIntent,
    client_order_id: str,
    order: OrderFull | QueryOrder,
    *,
    mode: str,
    now_ms: int,
    fills: tuple[Fill, ...] | None = None,
) -> ExecutionReport:
    """The execution report of a venue order response or query.

    A query carries no fills or commissions (those come from ``fills`` when given); the
    report then has the executed quantity and average price only.
    """
    status, terminal = venue_status(order.status)
    executed = Decimal(order.executedQty)
    quote = Decimal(order.cummulativeQuoteQty)
    if quote < 0:  # very old orders: unavailable (§3.8)
        quote = Decimal(0)
    if fills is None:
        fills = _fills(order.fills) if isinstance(order, OrderFull) else ()
    commission = sum((f.commission for f in fills), Decimal(0))
    assets = {f.commission_asset for f in fills}
    if terminal and status in (ExecutionStatus.CANCELED, ExecutionStatus.EXPIRED) and executed > 0:
        status = ExecutionStatus.PARTIALLY_FILLED
    return report_for(
        intent,
        client_order_id,
        status=status,
        final=terminal,
        mode=mode,
        now_ms=now_ms,
        executed_qty=executed,
        cumulative_quote=quote,
        avg_price=(quote / executed) if executed > 0 else Decimal(0),
        commission=commission,
        commission_asset=assets.pop() if len(assets) == 1 else "",
        fills=fills,
        exchange_order_id=order.orderId,
        reason="" if terminal or status is not ExecutionStatus.NEW else "resting",
    )


def rejection(
    intent: OrderIntent, client_order_id: str, reason: str, *, mode: str, now_ms: int
) -> ExecutionReport:
    return report_for(
        intent,
        client_order_id,
        status=ExecutionStatus.REJECTED,
        final=True,
        mode=mode,
        now_ms=now_ms,
        reason=reason,
    )
