"""Paper mode's resting-order step: fill resting LIMIT orders whose price crossed."""

from __future__ import annotations

from services.gateway.paper import PaperCosts, match
from services.gateway.paper_executor import fill_outcome
from services.gateway.processor import EVENTS_MAXLEN, Processor, ending_of, halt_event
from services.gateway.sizing import IntentRejected, prepare
from services.gateway.store import Ending
from shared import keys
from shared.logging import get_logger
from shared.messages import MessageDecodeError, OrderIntent, decode_as
from shared.redis import now_ms
from shared.streams import publish_nowait

log = get_logger(__name__)


class PaperFollower:
    def __init__(self, processor: Processor, costs: PaperCosts) -> None:
        self.processor = processor
        self.store = processor.store
        self.costs = costs

    async def step(self) -> int:
        """One pass over the resting orders; returns how many filled."""
        cids = await self.store.open()
        if not cids:
            return 0
        records = await self.store.records(cids)
        intents: list[tuple[str, OrderIntent]] = []
        for cid, record in zip(cids, records, strict=True):
            if record.get("status") != "OPEN":
                continue
            try:
                intent = decode_as({"type": "order_intent", "data": record["intent"]}, OrderIntent)
            except (MessageDecodeError, KeyError) as exc:  # one bad record: not the others
                log.error("order.record_undecodable", cid=cid, error=str(exc))
                continue
            intents.append((cid, intent))
        symbols = {i.symbol for _c, i in intents}
        rules = await self.processor.rules.get_many(symbols)
        prices = await self.store.prices(sorted(symbols))
        now = now_ms()
        filled = 0
        queued: list[tuple[str, OrderIntent]] = []
        endings: list[Ending] = []
        for cid, intent in intents:
            price, symbol_rules = prices.get(intent.symbol), rules.get(intent.symbol)
            if price is None or symbol_rules is None:
                continue
            try:
                order = prepare(intent, symbol_rules, price)
            except IntentRejected:
                continue
            fill = match(order, price, self.costs, symbol_rules.step_size, resting=True)
            if fill is None:
                continue
            endings.append(ending_of(cid, fill_outcome(intent, cid, order, fill, now)))
            queued.append((cid, intent))
        completions = await self.store.finalize_many(endings, now)
        filled = len(queued)
        halts = []
        for (_cid, intent), completion in zip(queued, completions, strict=True):
            if completion.outcome == "done":
                self.processor.figures.reports += 1
            if completion.halt_reason:
                self.processor.figures.halts += 1
                halts.append(
                    halt_event(completion.halt_reason, intent, self.processor.service, now)
                )
        if halts:
            async with self.store.redis.pipeline(transaction=False) as pipe:
                for event in halts:
                    publish_nowait(pipe, keys.EVENTS, event, maxlen=EVENTS_MAXLEN)
                await pipe.execute()
        return filled
