"""The gateway's Redis shell: the Lua scripts (``lua/``) that make admission, refusal
and completion of an order atomic across gateway instances, and the reads around them.

Every method takes a pipeline-able client; batch variants queue one script call per
intent on one pipeline, so a batch costs one round trip per step, not per intent. The
paper hot path goes further: ``records.lua`` reads a batch's records, prices and the
positions its sells change, and ``trade.lua`` admits and completes a whole batch, each
in one call (the per-call cost of EVALSHA in Redis and in redis-py was most of the CPU
an intent cost).

The scripts' constants and argument layouts come from :mod:`services.gateway.scripts`;
money crosses into them as integer units (:mod:`shared.money`). A sell's cost and PnL
are computed here (:func:`risk_state.sell_split`) from the position as read, and
``finalize.lua`` refuses them if the position moved meanwhile (another instance, or an
earlier intent of the batch that did not go as predicted): the position is read again
and the figures recomputed, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from services.gateway import risk_state, scripts
from services.gateway.orders import (
    RecordField,
    RecordStatus,
    answered_field,
    record_status_for,
)
from services.gateway.paper import PaperFill
from services.gateway.rails import RATE_WINDOW_S, Rails, rate_window
from services.gateway.risk_state import EMPTY, Position, SellSplit
from services.gateway.sizing import PreparedOrder
from shared import keys
from shared.logging import get_logger
from shared.messages import ExecutionReport, ExecutionStatus, OrderIntent, Side, encode_json
from shared.money import FIGURE_LIMIT, to_units, to_units_ceiling
from shared.streams import ensure_group

log = get_logger(__name__)
EXECUTIONS_MAXLEN = 100_000  # the cap of stream:executions while no consumer group reads it
# stream:executions has the ledger's consumer group, so XADD never trims it (DESIGN
# "Traps": MAXLEN deletes pending entries): the scripts' MAXLEN argument is out of reach,
# and the app's retention loop (shared.retention) trims below what every group
# acknowledged, never within EXECUTIONS_KEEP_MS (runners read it without a group).
XADD_NO_TRIM = 10**15  # no stream gets this long; exact as a Lua number (a double)
EXECUTIONS_KEEP_MS = 300_000
_NO_TRIM = str(XADD_NO_TRIM)  # script arguments are strings to Redis
RECORD_RETENTION_S = 7 * 86_400  # default life of a final order record
WAITING_PAGE = 500  # entries per XPENDING / XRANGE page of waiting_intents
TRADE_CHUNK = 64  # intents per trade.lua call: amortises the call, bounds its duration
CONFLICT_ATTEMPTS = 5  # reads and recomputations of a sell whose position keeps moving
REASON_MARK = "@@REASON@@"
_QUOTED_MARK = b'"@@REASON@@"'  # replaced in trade.lua by the refusal's reason
_json = msgspec.json.Encoder()
ZERO = Decimal(0)
PositionKey = tuple[str, str]  # (bot, symbol)
_ITEM_KEYS_IN_ADMIT = [scripts.ADMIT_KEYS.index(name) for name in scripts.TRADE_ITEM_KEYS]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def utc_day(now_ms: int) -> str:
    return _utc_day(now_ms // 86_400_000)


@functools.lru_cache(maxsize=4)
def _utc_day(day: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(day * 86_400))


@dataclass(frozen=True, slots=True)
class Admission:
    """Outcome of ``admit.lua``: ``ok``, ``exists`` (with status) or ``reject``."""

    outcome: str
    status: str = ""
    kind: str = ""  # reject: fence | rail | halt | risk
    reason: str = ""
    verified_exit: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """Outcome of ``transition.lua``: ``ok`` (with the new rev), ``final``, ``stale``
    (the record moved since it was read: status and rev now) or ``missing``."""

    outcome: str
    status: str = ""
    rev: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True, slots=True)
class Completion:
    outcome: str  # done | already | moved (not in the status required) | missing
    #  | conflict (the position kept moving)
    status: str = ""
    halt_reason: str = ""


class Ending(msgspec.Struct, frozen=True):
    """What ``finalize.lua`` is asked to record for one order (amounts in Decimal)."""

    cid: str
    report: ExecutionReport
    position_qty: Decimal = ZERO
    quote_amount: Decimal = ZERO
    balance_check: tuple[str, Decimal] | None = None
    balance_deltas: dict[str, Decimal] | None = None
    rejection: ExecutionReport | None = None
    rejection_json: str = ""  # used instead of ``rejection`` when given (trade.lua)
    only_from: str = ""  # end the record only if it is in this status (else ``moved``)
    reserved: int | None = None  # units the record reserved, when known (trade.lua)

    @property
    def position(self) -> PositionKey:
        return self.report.bot_id, self.report.symbol

    @property
    def sells(self) -> bool:
        """Takes base out of a position: its figures need the position as it is."""
        return self.report.side is Side.SELL and self.position_qty > 0


class Prediction(msgspec.Struct, frozen=True):
    """An ending's starting position as predicted, its sell figures, its amounts (units)."""

    before: Position
    split: SellSplit | None
    qty: int
    quote: int


class TradeEntry(msgspec.Struct):
    """One intent of a ``trade.lua`` batch, before its sell figures are computed."""

    keys: list[str]
    ids: list[str]
    template: str
    admit: scripts.AdmitArgs
    ending: Ending
    now_ms: int


class GatewayStore:
    """Redis operations of one gateway instance (``mode`` is paper or live)."""

    def __init__(
        self,
        redis: Any,
        *,
        mode: str,
        instance: str,
        equity_base: Decimal = Decimal(0),
        retention_s: int = RECORD_RETENTION_S,
    ) -> None:
        self.redis = redis
        self.retention_s = retention_s
        self.equity_base = equity_base
        self.mode = mode
        self.instance = instance
        self.active_key = keys.active_orders(mode)
        self.open_key = keys.open_orders(mode)
        self.balances_key = keys.balances(mode)
        self._scripts = scripts.build()
        self._sha = {name: scripts.sha1(text) for name, text in self._scripts.items()}

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every script (at start, and after NOSCRIPT: a restarted Redis).

        Pipelines then call EVALSHA directly, without redis-py's SCRIPT EXISTS round trip
        per pipeline; a NOSCRIPT failure leaves the batch unacknowledged, and it is
        retried once the scripts are loaded again (every step is idempotent)."""
        for text in self._scripts.values():
            await self.redis.script_load(text)

    def _call(self, pipe: Any, name: str, keys_: list[str], args: scripts.Args) -> Any:
        return pipe.evalsha(self._sha[name], len(keys_), *keys_, scripts.encode(args))

    # --- reads ------------------------------------------------------------------------
    async def records(self, cids: list[str]) -> list[dict[str, str]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in cids:
                pipe.hgetall(keys.order(cid))
            rows = await pipe.execute()
        return [{_text(k): _text(v) for k, v in row.items()} for row in rows]

    async def records_and_prices(
        self, cids: list[str], symbols: list[str], positions: Sequence[PositionKey] = ()
    ) -> tuple[list[dict[str, str]], dict[str, Decimal | None], dict[PositionKey, Position]]:
        """The order records (final and OPEN ones: only their status), the symbols' last
        prices and the given positions, in one ``records.lua`` call."""
        wanted = list(dict.fromkeys(positions))
        fields = [f for bot, symbol in wanted for f in risk_state.position_fields(bot, symbol)]
        reply = await self.redis.evalsha(
            self._sha["records"],
            len(cids) + len(symbols) + 1,
            *[keys.order(cid) for cid in cids],
            *[keys.price(s) for s in symbols],
            keys.RISK_STATE,
            scripts.encode(scripts.RecordsArgs(len(cids), len(symbols), fields)),
        )
        rows, values, held = reply
        records: list[dict[str, str]] = []
        for row in rows:
            if not row:
                records.append({})
                continue
            it = iter(row)
            records.append({_text(k): _text(v) for k, v in zip(it, it, strict=True)})
        found = {pos: Position.parse(held[2 * i], held[2 * i + 1]) for i, pos in enumerate(wanted)}
        return records, _prices(symbols, values), found

    async def record(self, cid: str) -> dict[str, str]:
        return (await self.records([cid]))[0]

    async def prices(self, symbols: list[str]) -> dict[str, Decimal | None]:
        if not symbols:
            return {}
        return _prices(symbols, await self.redis.mget([keys.price(s) for s in symbols]))

    async def positions(self, wanted: Sequence[PositionKey]) -> dict[PositionKey, Position]:
        """The positions as stored (one HMGET)."""
        unique = list(dict.fromkeys(wanted))
        if not unique:
            return {}
        fields = [f for bot, symbol in unique for f in risk_state.position_fields(bot, symbol)]
        values = await self.redis.hmget(keys.RISK_STATE, fields)
        return {
            pos: Position.parse(values[2 * i], values[2 * i + 1]) for i, pos in enumerate(unique)
        }

    # --- script calls, queued on a pipeline ----------------------------------------------
    def queue_admit(
        self,
        pipe: Any,
        intent: OrderIntent,
        intent_json: bytes,
        cid: str,
        order: PreparedOrder,
        rail_verdict: str,
        rails: Rails,
        now_ms: int,
        entry_id: Any = "",
    ) -> None:
        keys_, args = self._admit_call(
            intent, intent_json, cid, order, rail_verdict, rails, now_ms, entry_id
        )
        self._call(pipe, "admit", keys_, args)

    def _admit_call(
        self,
        intent: OrderIntent,
        intent_json: bytes,
        cid: str,
        order: PreparedOrder,
        rail_verdict: str,
        rails: Rails,
        now_ms: int,
        entry_id: Any = "",
    ) -> tuple[list[str], scripts.AdmitArgs]:
        window = rate_window(now_ms)
        qty_field, _cost_field = risk_state.position_fields(intent.bot_id, intent.symbol)
        return (
            scripts.keys_of(
                scripts.ADMIT_KEYS,
                order=keys.order(cid),
                bot=keys.bot(intent.bot_id),
                risk_limits=keys.RISK_LIMITS,
                risk_halt=keys.RISK_HALT,
                risk_state=keys.RISK_STATE,
                bot_rate=keys.bot_rate(intent.bot_id, window),
                fleet_rate=keys.fleet_rate(window),
                active=self.active_key,
            ),
            scripts.AdmitArgs(
                cid=cid,
                intent=intent_json.decode(),
                epoch=intent.epoch,
                side=intent.side.value,
                is_exit=intent.is_exit,
                symbol=intent.symbol,
                qty=str(to_units(order.quantity)) if order.quantity is not None else "",
                notional=str(to_units_ceiling(order.notional)),
                rail_verdict=rail_verdict,
                bot_limit=rails.bot_orders_per_window,
                fleet_limit=rails.fleet_orders_per_window,
                counter_ttl=RATE_WINDOW_S * 2,
                now=str(now_ms),
                mode=self.mode,
                instance=self.instance,
                pos_qty_field=qty_field,
                symbol_exposure_field=risk_state.symbol_exposure_field(intent.symbol),
                day_field=risk_state.day_field(utc_day(now_ms)),
                entry=_text(entry_id),
            ),
        )

    @staticmethod
    def parse_admission(reply: Any) -> Admission:
        parts = [_text(p) for p in reply]
        if parts[0] == "ok":
            return Admission("ok", verified_exit=parts[1] == "1")
        if parts[0] == "exists":
            return Admission("exists", status=parts[1])
        return Admission("reject", kind=parts[1], reason=parts[2])

    def queue_reject(
        self,
        pipe: Any,
        intent_json: bytes,
        cid: str,
        report: ExecutionReport,
        now_ms: int,
        entry_id: Any = "",
    ) -> None:
        self._call(
            pipe,
            "reject",
            scripts.keys_of(scripts.REJECT_KEYS, order=keys.order(cid), executions=keys.EXECUTIONS),
            scripts.RejectArgs(
                cid=cid,
                intent=intent_json.decode(),
                report_type=report.TYPE,
                report=encode_json(report).decode(),
                now=str(now_ms),
                mode=self.mode,
                instance=self.instance,
                reason=report.reason,
                maxlen=_NO_TRIM,
                retention=self.retention_s,
                entry=_text(entry_id),
            ),
        )

    def queue_notice(self, pipe: Any, report: ExecutionReport) -> None:
        """Publish a non-final report that changes no record (a stale-epoch copy)."""
        pipe.xadd(keys.EXECUTIONS, {"type": report.TYPE, "data": encode_json(report)})

    def queue_republish(self, pipe: Any, cid: str, entry_id: Any) -> None:
        """A repeated intent whose record is final: its stored report again, once per
        new stream entry (``republish.lua``)."""
        entry = _text(entry_id)
        self._call(
            pipe,
            "republish",
            scripts.keys_of(
                scripts.REPUBLISH_KEYS, order=keys.order(cid), executions=keys.EXECUTIONS
            ),
            scripts.RepublishArgs(
                entry=entry,
                answered_field=answered_field(entry),
                report_type=ExecutionReport.TYPE,
                maxlen=_NO_TRIM,
            ),
        )

    # --- completion ------------------------------------------------------------------------
    def _finalize_keys(self, cid: str) -> list[str]:
        return scripts.keys_of(
            scripts.FINALIZE_KEYS,
            order=keys.order(cid),
            risk_limits=keys.RISK_LIMITS,
            risk_halt=keys.RISK_HALT,
            risk_state=keys.RISK_STATE,
            executions=keys.EXECUTIONS,
            active=self.active_key,
            open=self.open_key,
            balances=self.balances_key,
        )

    def _finalize_args(
        self, ending: Ending, now_ms: int, prediction: Prediction
    ) -> scripts.FinalizeArgs:
        report = ending.report
        qty_field, cost_field = risk_state.position_fields(report.bot_id, report.symbol)
        check = ending.balance_check
        split = prediction.split
        expect_qty, expect_cost = prediction.before.expect() if split is not None else ("", "")
        rejection = ending.rejection_json or (
            encode_json(ending.rejection).decode() if ending.rejection is not None else ""
        )
        return scripts.FinalizeArgs(
            status=record_status_for(report).value,
            report_type=report.TYPE,
            report=encode_json(report).decode(),
            side=report.side.value,
            qty=str(prediction.qty),
            quote=str(prediction.quote),
            now=str(now_ms),
            maxlen=_NO_TRIM,
            cid=ending.cid,
            check_field=_free(check[0]) if check else "",
            check_needed=str(_units(check[1], ending, prediction)) if check else "0",
            rejection=rejection,
            deltas=[
                (_free(a), str(_units(d, ending, prediction)))
                for a, d in (ending.balance_deltas or {}).items()
            ],
            symbol_exposure_field=risk_state.symbol_exposure_field(report.symbol),
            pos_qty_field=qty_field,
            pos_cost_field=cost_field,
            day_field=risk_state.day_field(utc_day(now_ms)),
            sell=split is not None,
            expect_qty=expect_qty,
            expect_cost=expect_cost,
            sold=str(split.sold) if split else "0",
            cost_out=str(split.cost_out) if split else "0",
            realized=str(split.realized) if split else "0",
            closes=split.closes if split else False,
            retention=self.retention_s,
            only_from=ending.only_from,
            reserved_hint="" if ending.reserved is None else str(ending.reserved),
            exposure_change="0"
            if ending.reserved is None
            else str(prediction.quote - ending.reserved),
        )

    @staticmethod
    def _predict(positions: dict[PositionKey, Position], ending: Ending) -> Prediction:
        """The position ``ending`` starts from (as predicted from the read and the endings
        before it), its amounts in units and its sell figures; advances the prediction
        past it."""
        key = ending.position
        before = positions.get(key, EMPTY)
        split = None
        qty, quote = to_units(ending.position_qty), to_units(ending.quote_amount)
        if ending.sells:
            split = risk_state.sell_split(before, qty, quote)
            positions[key] = split.after(before)
        elif ending.report.side is Side.BUY and qty > 0:
            positions[key] = Position((before.qty or 0) + qty, (before.cost or 0) + quote)
        return Prediction(before, split, qty, quote)

    async def finalize_many(self, endings: Sequence[Ending], now_ms: int) -> list[Completion]:
        """Run ``finalize.lua`` for each ending (one round trip; sells whose position
        moved are read again and recomputed, at most ``CONFLICT_ATTEMPTS`` times)."""
        if not endings:
            return []
        results: list[Completion | None] = [None] * len(endings)
        todo = list(range(len(endings)))
        for attempt in range(CONFLICT_ATTEMPTS):
            positions = await self.positions(
                [endings[i].position for i in todo if endings[i].sells]
            )
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    prediction = self._predict(positions, endings[i])
                    self._call(
                        pipe,
                        "finalize",
                        self._finalize_keys(endings[i].cid),
                        self._finalize_args(endings[i], now_ms, prediction),
                    )
                replies = await pipe.execute()
            retry: list[int] = []
            for i, reply in zip(todo, replies, strict=True):
                parts = [_text(p) for p in reply]
                if parts[0] == "conflict":
                    retry.append(i)
                    continue
                results[i] = await self._completion(parts)
            if not retry:
                break
            todo = retry
            log.info(
                "finalize.position_moved", cids=[endings[i].cid for i in retry], attempt=attempt
            )
            await asyncio.sleep(0.002 * 2**attempt)
        return [r if r is not None else Completion("conflict") for r in results]

    async def _completion(self, parts: list[str]) -> Completion:
        if parts[0] == "done":
            halt = parts[2] or await self._drawdown_halt(parts[3], parts[4], parts[5])
            return Completion("done", status=parts[1], halt_reason=halt)
        if parts[0] in ("already", "moved"):
            return Completion(parts[0], status=parts[1])
        return Completion("missing")

    async def _drawdown_halt(self, total: str, peak: str, limit: str) -> str:
        """Set ``risk:halt`` if the drawdown is past its limit and no halt is set; returns
        the reason when this call set it (the caller emits the event).

        Judged after the figures are written (a quotient has no exact Lua form); the
        figures stay, so a crash in between is caught by the next sell's check."""
        if not total:
            return ""
        reason = risk_state.drawdown_breach(total, peak, limit, self.equity_base)
        if reason is None:
            return ""
        return reason if await self.redis.set(keys.RISK_HALT, reason, nx=True) else ""

    # --- the paper fast path -----------------------------------------------------------
    def trade_item(
        self,
        entry_ids: list[Any],
        intent: OrderIntent,
        intent_json: bytes,
        cid: str,
        order: PreparedOrder,
        rail_verdict: str,
        rails: Rails,
        now_ms: int,
        *,
        report: ExecutionReport,
        position_qty: Decimal,
        quote_amount: Decimal,
        balance_check: tuple[str, Decimal] | None,
        balance_deltas: dict[str, Decimal] | None,
        rejection_reason: str | None,
    ) -> TradeEntry:
        """One intent of a ``trade.lua`` batch: its own keys and arguments.

        The refusal template is this intent's REJECTED report with the reason left as a
        mark (Lua quotes a refusal's reason into it); a failed balance check's report is
        the same template with ``rejection_reason``, so one report is encoded, not two."""
        akeys, aargs = self._admit_call(
            intent, intent_json, cid, order, rail_verdict, rails, now_ms, entry_ids[0]
        )
        template = encode_json(
            msgspec.structs.replace(
                report,
                status=ExecutionStatus.REJECTED,
                reason=REASON_MARK,
                executed_qty=ZERO,
                cumulative_quote=ZERO,
                avg_price=ZERO,
                commission=ZERO,
                commission_asset="",
                fills=(),
            )
        )
        rejection_json = (
            template.replace(_QUOTED_MARK, _json.encode(rejection_reason)).decode()
            if rejection_reason is not None
            else ""
        )
        return TradeEntry(
            keys=[akeys[i] for i in _ITEM_KEYS_IN_ADMIT],
            ids=[_text(i) for i in entry_ids],
            template=template.decode(),
            admit=aargs,
            ending=Ending(
                cid,
                report,
                position_qty=position_qty,
                quote_amount=quote_amount,
                balance_check=balance_check,
                balance_deltas=balance_deltas,
                rejection_json=rejection_json,
                # admit.lua reserves an entry's notional in the same call
                reserved=int(aargs.notional)
                if intent.side is Side.BUY and not intent.is_exit
                else 0,
            ),
            now_ms=now_ms,
        )

    async def trade_many(
        self,
        entries: list[TradeEntry],
        now_ms: int,
        positions: dict[PositionKey, Position],
    ) -> list[tuple[str, str, str]]:
        """Run ``trade.lua`` for a batch of :meth:`trade_item` results, one call per
        ``TRADE_CHUNK`` intents (each call atomic; all calls in one round trip): per intent
        (``done`` | ``rejected`` | ``exists`` | ``conflict``, status or kind, halt reason or
        reason or acked flag). ``positions``: the batch's sell positions as read; each
        sell's figures are computed from them and the intents before it. Chunks bound how
        long one call holds Redis (~5 ms for 64)."""
        if not entries:
            return []
        predicted = dict(positions)
        shared = scripts.keys_of(
            scripts.TRADE_KEYS,
            risk_limits=keys.RISK_LIMITS,
            risk_halt=keys.RISK_HALT,
            risk_state=keys.RISK_STATE,
            fleet_rate=keys.fleet_rate(rate_window(now_ms)),
            active=self.active_key,
            executions=keys.EXECUTIONS,
            open=self.open_key,
            balances=self.balances_key,
            intents=keys.ORDER_INTENTS,
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(entries), TRADE_CHUNK):
                chunk = entries[start : start + TRADE_CHUNK]
                own: list[str] = []
                items: list[scripts.TradeItem] = []
                for entry in chunk:
                    own += entry.keys
                    prediction = self._predict(predicted, entry.ending)
                    items.append(
                        scripts.TradeItem(
                            ids=entry.ids,
                            template=entry.template,
                            admit=entry.admit,
                            finalize=self._finalize_args(entry.ending, entry.now_ms, prediction),
                        )
                    )
                payload = scripts.TradeArgs(
                    group=keys.GATEWAY_GROUP,
                    report_type=ExecutionReport.TYPE,
                    reason_mark=_QUOTED_MARK.decode(),
                    items=items,
                )
                self._call(pipe, "trade", shared + own, payload)
            replies = await pipe.execute()
        out: list[tuple[str, str, str]] = []
        for chunk_reply in replies:
            for reply in chunk_reply:
                if reply[0] == b"done" and not reply[3]:  # the common case: no sell figures
                    out.append(("done", _text(reply[1]), _text(reply[2])))
                    continue
                parts = [_text(p) for p in reply]
                if parts[0] == "done":
                    completion = await self._completion(parts)
                    out.append(("done", completion.status, completion.halt_reason))
                else:
                    out.append(
                        (
                            parts[0],
                            parts[1] if len(parts) > 1 else "",
                            parts[2] if len(parts) > 2 else "",
                        )
                    )
        return out

    # --- transitions: compare-and-set on (status, rev) --------------------------------
    def _transition_call(
        self,
        cid: str,
        expected: dict[str, str] | None,
        new_status: str,
        now_ms: int,
        fields: dict[str, Any],
        report: ExecutionReport | None = None,
    ) -> tuple[list[str], scripts.TransitionArgs]:
        return (
            scripts.keys_of(
                scripts.TRANSITION_KEYS,
                order=keys.order(cid),
                open=self.open_key,
                executions=keys.EXECUTIONS,
            ),
            scripts.TransitionArgs(
                any_status=expected is None,
                expected_status=expected.get(RecordField.STATUS, "") if expected else "",
                expected_rev=expected.get(RecordField.REV, "0") if expected else "0",
                new_status=new_status,
                now=str(now_ms),
                cid=cid,
                report_type=ExecutionReport.TYPE,
                report=encode_json(report).decode() if report is not None else "",
                maxlen=_NO_TRIM,
                fields=[(name, str(value)) for name, value in fields.items()],
            ),
        )

    async def transition(
        self, cid: str, expected: dict[str, str], new_status: str, now_ms: int, **fields: Any
    ) -> Transition:
        """Move ``order:{cid}`` to ``new_status`` only if it is still at the status and
        rev of ``expected`` (the record as the caller read it); on success ``expected``
        is updated to the new status and rev, so the caller's next step starts from it."""
        keys_, args = self._transition_call(cid, expected, new_status, now_ms, fields)
        reply = await self._call(self.redis, "transition", keys_, args)
        result = self.parse_transition(reply)
        if result.ok:
            expected[RecordField.STATUS] = new_status
            expected[RecordField.REV] = result.rev
            expected.update({name: str(value) for name, value in fields.items()})
        return result

    @staticmethod
    def parse_transition(reply: Any) -> Transition:
        parts = [_text(p) for p in reply]
        if parts[0] == "ok":
            return Transition("ok", rev=parts[1])
        if parts[0] == "final":
            return Transition("final", status=parts[1])
        if parts[0] == "stale":
            return Transition("stale", status=parts[1], rev=parts[2])
        return Transition("missing")

    def queue_rest(
        self,
        pipe: Any,
        cid: str,
        report: ExecutionReport,
        now_ms: int,
        expected: dict[str, str] | None = None,
    ) -> None:
        """The order rests on the book: record OPEN, follow it, tell the bot (not final);
        a compare-and-set from ``expected`` (status and rev as read; None: from any state
        that is not final). Reply: see :meth:`parse_transition`."""
        fields: dict[str, Any] = {}
        if report.exchange_order_id is not None:
            fields[RecordField.EXCHANGE_ORDER_ID] = report.exchange_order_id
        keys_, args = self._transition_call(
            cid, expected, RecordStatus.OPEN, now_ms, fields, report
        )
        self._call(pipe, "transition", keys_, args)

    async def waiting_intents(
        self, limit: int = 100_000, page: int = WAITING_PAGE
    ) -> list[tuple[bytes, dict[Any, Any]]]:
        """Every intent entry not yet acknowledged by the group (pending with any
        consumer, or never delivered), oldest first: what a restart will process.
        Read a page at a time (``page`` entries per call); ``limit`` bounds the total."""
        stream, group = keys.ORDER_INTENTS, keys.GATEWAY_GROUP
        await ensure_group(self.redis, stream, group)
        groups = await self.redis.xinfo_groups(stream)
        info = next((g for g in groups if _text(g.get("name")) == group), None)
        if info is None:
            return []
        entries: list[tuple[bytes, dict[Any, Any]]] = []
        start = "-"
        while len(entries) < limit:
            rows = await self.redis.xpending_range(stream, group, min=start, max="+", count=page)
            if not rows:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.xrange(stream, min=row["message_id"], max=row["message_id"])
                for found in await pipe.execute():
                    entries.extend(found)  # an entry trimmed while pending is gone
            if len(rows) < page:
                break
            start = f"({_text(rows[-1]['message_id'])}"
        last = _text(info.get("last-delivered-id"))
        start = f"({last}"
        while len(entries) < limit:
            found = await self.redis.xrange(stream, min=start, max="+", count=page)
            entries.extend(found)
            if len(found) < page:
                break
            start = f"({_text(found[-1][0])}"
        return entries[:limit]

    async def adopt(self, cid: str, intent_json: bytes, now_ms: int) -> bool:
        """Recreate a lost record for an order found on the exchange (status UNKNOWN, no
        reservation); False if a record exists after all."""
        created = await self.redis.evalsha(
            self._sha["adopt"],
            len(scripts.ADOPT_KEYS),
            *scripts.keys_of(scripts.ADOPT_KEYS, order=keys.order(cid), active=self.active_key),
            scripts.encode(
                scripts.AdoptArgs(
                    cid=cid,
                    intent=intent_json.decode(),
                    mode=self.mode,
                    now=str(now_ms),
                    instance=self.instance,
                )
            ),
        )
        return bool(created)

    async def active(self) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.active_key))

    async def open(self) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.open_key))

    async def upgrade_money(self) -> int:
        """Convert amounts an older gateway stored as decimal strings to integer units,
        once per Redis (``lua/units.lua``); returns how many (-1: done before)."""
        if await self.redis.exists(keys.MONEY_UNITS):
            return -1
        cids = [
            _text(c)
            for mode in ("paper", "live")
            for c in await self.redis.smembers(keys.active_orders(mode))
        ]
        order_keys = [keys.order(cid) for cid in cids]
        fixed = scripts.keys_of(
            scripts.UNITS_KEYS,
            marker=keys.MONEY_UNITS,
            risk_state=keys.RISK_STATE,
            paper_balances=keys.balances("paper"),
        )
        converted = int(
            await self.redis.evalsha(
                self._sha["units"],
                len(fixed) + len(order_keys),
                *fixed,
                *order_keys,
                scripts.encode(scripts.UnitsArgs(first_record=len(fixed) + 1)),
            )
        )
        if converted > 0:
            log.warning("money.converted_to_units", values=converted)
        return converted

    async def seed_paper_balances(self, balances: dict[str, Decimal]) -> None:
        """Initial paper balances (integer units, as ``finalize.lua`` changes them), only
        for assets that have none yet."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for asset, amount in balances.items():
                pipe.hsetnx(
                    self.balances_key, _free(asset), str(to_units(amount, limit=FIGURE_LIMIT))
                )
                pipe.hsetnx(self.balances_key, _locked(asset), "0")
            await pipe.execute()


def _prices(symbols: list[str], values: list[Any]) -> dict[str, Decimal | None]:
    result: dict[str, Decimal | None] = {}
    for symbol, value in zip(symbols, values, strict=True):
        try:
            price = Decimal(_text(value)) if value is not None else None
        except ArithmeticError:
            price = None
        result[symbol] = price if price is not None and price.is_finite() else None
    return result


def _units(amount: Decimal, ending: Ending, prediction: Prediction) -> int:
    """Units of a balance amount; a paper fill's are its quantity and quote amount (or
    their negatives), converted once already."""
    if amount == ending.quote_amount:
        return prediction.quote
    if amount == ending.position_qty:
        return prediction.qty
    if -amount == ending.quote_amount:
        return -prediction.quote
    if -amount == ending.position_qty:
        return -prediction.qty
    return to_units(amount)


def _free(asset: str) -> str:
    """The ``balances:{mode}`` field of an asset's free amount (as the venue names it)."""
    return f"{asset}:free"


def _locked(asset: str) -> str:
    return f"{asset}:locked"


def fill_amounts(side_is_buy: bool, fill: PaperFill) -> tuple[Decimal, Decimal]:
    """(position quantity, quote amount) a paper fill adds to the risk figures."""
    if side_is_buy:
        return fill.qty, fill.quote + fill.commission
    return fill.qty, fill.quote - fill.commission
