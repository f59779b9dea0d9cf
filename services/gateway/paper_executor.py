"""Paper mode's executor: fills admitted orders with the paper matching engine
(:mod:`services.gateway.paper`, the shared fill model) at ``price:{SYMBOL}``; the balance check and update
happen atomically in ``finalize.lua`` against ``balances:paper``."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from services.gateway.orders import rejection, report_for
from services.gateway.paper import (
    PaperCosts,
    PaperFill,
    balance_effect,
    match,
    position_effect,
    rests,
)
from services.gateway.processor import Job, Outcome
from services.gateway.sizing import PreparedOrder
from shared.messages import ExecutionReport, ExecutionStatus, Fill, OrderIntent
from shared.redis import now_ms

MODE = "paper"


def fill_report(
    intent: OrderIntent,
    cid: str,
    fill: PaperFill,
    *,
    now: int,
    trade_id: int = 0,
) -> ExecutionReport:
    return report_for(
        intent,
        cid,
        status=ExecutionStatus.FILLED,
        final=True,
        mode=MODE,
        now_ms=now,
        executed_qty=fill.qty,
        cumulative_quote=fill.quote,
        avg_price=fill.price,
        commission=fill.commission,
        commission_asset=fill.commission_asset,
        fills=(
            Fill(
                price=fill.price,
                qty=fill.qty,
                commission=fill.commission,
                commission_asset=fill.commission_asset,
                trade_id=trade_id,
            ),
        ),
    )


def fill_outcome(
    intent: OrderIntent, cid: str, order: PreparedOrder, fill: PaperFill, now: int
) -> Outcome:
    check_asset, needed, deltas = balance_effect(order, fill)
    position_qty, quote_amount = position_effect(order, fill)
    return Outcome(
        report=fill_report(intent, cid, fill, now=now),
        position_qty=position_qty,
        quote_amount=quote_amount,
        balance_check=(check_asset, needed),
        balance_deltas=deltas,
        rejection=rejection(
            intent,
            cid,
            f"insufficient balance: {needed} {check_asset} needed",
            mode=MODE,
            now_ms=now,
        ),
    )


class PaperExecutor:
    def __init__(self, costs: PaperCosts) -> None:
        self.costs = costs

    def immediate(self, job: Job, now: int) -> Outcome:
        """The outcome of a new order, known before admission (the processor's fast path)."""
        return self._one(job, now)

    async def execute_many(self, jobs: Sequence[Job]) -> list[Outcome | None]:
        now = now_ms()
        return [self._one(job, now) for job in jobs]

    def _one(self, job: Job, now: int) -> Outcome:
        intent, cid, order = job.intent, job.cid, job.order
        if order is None or job.rules is None:
            return Outcome(
                report=rejection(intent, cid, "intent no longer valid", mode=MODE, now_ms=now)
            )
        if job.price is None:
            return Outcome(
                report=rejection(
                    intent, cid, f"no price for {intent.symbol}", mode=MODE, now_ms=now
                )
            )
        step = job.rules.market_step_size or job.rules.step_size
        fill = match(order, job.price, self.costs, step)
        if fill is not None:
            return fill_outcome(intent, cid, order, fill, now)
        if rests(order):
            return Outcome(report=_resting_report(intent, cid, now))
        status = ExecutionStatus.EXPIRED if order.price is not None else ExecutionStatus.REJECTED
        report = rejection(intent, cid, "no fill at the current price", mode=MODE, now_ms=now)
        return Outcome(report=msgspec.structs.replace(report, status=status))


def _resting_report(intent: OrderIntent, cid: str, now: int) -> ExecutionReport:
    return report_for(
        intent,
        cid,
        status=ExecutionStatus.NEW,
        final=False,
        mode=MODE,
        now_ms=now,
        reason="resting",
    )
