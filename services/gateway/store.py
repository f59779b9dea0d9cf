"""The gateway's Redis shell: the Lua scripts (``lua/``) that make admission, refusal
and completion of an order atomic across gateway instances, and the reads around them.

Every method takes a pipeline-able client; batch variants queue one script call per
intent on one pipeline, so a batch costs one round trip per step, not per intent. The
paper hot path goes further: ``records.lua`` reads a batch's records and prices and
``trade.lua`` admits and completes a whole batch, each in one call (the per-call cost of
EVALSHA in Redis and in redis-py was most of the CPU an intent cost).
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

import msgspec

from services.gateway.orders import record_status_for
from services.gateway.paper import PaperFill
from services.gateway.rails import RATE_WINDOW_S, Rails, rate_window
from services.gateway.sizing import PreparedOrder
from shared import keys
from shared.bots import BotField
from shared.messages import ExecutionReport, ExecutionStatus, OrderIntent, encode_json
from shared.streams import ensure_group

EXECUTIONS_MAXLEN = 100_000  # the cap of stream:executions while no consumer group reads it
# stream:executions has the ledger's consumer group, so XADD never trims it (DESIGN
# "Traps": MAXLEN deletes pending entries): the scripts' MAXLEN argument is out of reach,
# and the app's retention loop (shared.retention) trims below what every group
# acknowledged, never within EXECUTIONS_KEEP_MS (runners read it without a group).
XADD_NO_TRIM = 10**15  # no stream gets this long; exact as a Lua number (a double)
EXECUTIONS_KEEP_MS = 300_000
RECORD_RETENTION_S = 7 * 86_400  # default life of a final order record
WAITING_PAGE = 500  # entries per XPENDING / XRANGE page of waiting_intents
TRADE_CHUNK = 64  # intents per trade.lua call: amortises the call, bounds its duration
# KEYS: order:{cid}, active set; ARGV: cid, intent json, mode, now ms, instance (rare path)
_ADOPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'UNKNOWN', 'cid', ARGV[1], 'intent', ARGV[2],
  'mode', ARGV[3], 'reserved', '0', 'opened', '0', 'created_at', ARGV[4],
  'updated_at', ARGV[4], 'instance', ARGV[5], 'adopted', '1')
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""
REASON_MARK = "@@REASON@@"
_QUOTED_MARK = b'"@@REASON@@"'  # replaced in trade.lua by the refusal's reason
_json = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Encoder()  # trade.lua's batch: no escaping of the JSON inside
ZERO = Decimal(0)


def _lua(name: str) -> str:
    return resources.files("services.gateway").joinpath("lua", name).read_text()


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
    status: str = ""
    halt_reason: str = ""


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
        self._scripts = {
            name: _lua(f"{name}.lua")
            for name in ("admit", "reject", "finalize", "records", "transition", "republish")
        }
        self._scripts["trade"] = "".join(
            f"local function {name}(KEYS, ARGV)\n{self._scripts[name]}\nend\n"
            for name in ("admit", "reject", "finalize")
        ) + _lua("trade.lua")
        self._sha = {
            name: hashlib.sha1(text.encode()).hexdigest() for name, text in self._scripts.items()
        }

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every script (at start, and after NOSCRIPT: a restarted Redis).

        Pipelines then call EVALSHA directly, without redis-py's SCRIPT EXISTS round trip
        per pipeline; a NOSCRIPT failure leaves the batch unacknowledged, and it is
        retried once the scripts are loaded again (every step is idempotent)."""
        for text in self._scripts.values():
            await self.redis.script_load(text)

    def _call(self, pipe: Any, name: str, keys_: list[str], args: list[Any]) -> None:
        pipe.evalsha(self._sha[name], len(keys_), *keys_, *args)

    # --- reads ------------------------------------------------------------------------
    async def records(self, cids: list[str]) -> list[dict[str, str]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in cids:
                pipe.hgetall(keys.order(cid))
            rows = await pipe.execute()
        return [{_text(k): _text(v) for k, v in row.items()} for row in rows]

    async def records_and_prices(
        self, cids: list[str], symbols: list[str]
    ) -> tuple[list[dict[str, str]], dict[str, Decimal | None]]:
        """The order records (final and OPEN ones: only their status) and the symbols'
        last prices, in one ``records.lua`` call."""
        reply = await self.redis.evalsha(
            self._sha["records"],
            len(cids) + len(symbols),
            *[keys.order(cid) for cid in cids],
            *[keys.price(s) for s in symbols],
            len(cids),
        )
        rows, values = reply
        records: list[dict[str, str]] = []
        for row in rows:
            if not row:
                records.append({})
                continue
            it = iter(row)
            records.append({_text(k): _text(v) for k, v in zip(it, it, strict=True)})
        return records, _prices(symbols, values)

    async def record(self, cid: str) -> dict[str, str]:
        return (await self.records([cid]))[0]

    async def prices(self, symbols: list[str]) -> dict[str, Decimal | None]:
        if not symbols:
            return {}
        return _prices(symbols, await self.redis.mget([keys.price(s) for s in symbols]))

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
        self._call(
            pipe,
            "admit",
            *self._admit_call(
                intent, intent_json, cid, order, rail_verdict, rails, now_ms, entry_id
            ),
        )

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
    ) -> tuple[list[str], list[Any]]:
        window = rate_window(now_ms)
        return (
            [
                keys.order(cid),
                keys.bot(intent.bot_id),
                keys.RISK_LIMITS,
                keys.RISK_HALT,
                keys.RISK_STATE,
                keys.bot_rate(intent.bot_id, window),
                keys.fleet_rate(window),
                self.active_key,
            ],
            [  # all text: trade.lua receives them inside one JSON array
                cid,
                intent_json.decode(),
                str(intent.epoch),
                intent.side.value,
                "1" if intent.is_exit else "0",
                intent.symbol,
                intent.bot_id,
                str(order.quantity) if order.quantity is not None else "",
                str(order.notional),
                rail_verdict,
                str(rails.bot_orders_per_window),
                str(rails.fleet_orders_per_window),
                str(RATE_WINDOW_S * 2),
                str(now_ms),
                self.mode,
                self.instance,
                BotField.EPOCH.value,
                utc_day(now_ms),
                _text(entry_id),
            ],
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
            [keys.order(cid), keys.EXECUTIONS],
            args=[
                cid,
                intent_json,
                report.TYPE,
                encode_json(report),
                now_ms,
                self.mode,
                self.instance,
                report.reason,
                XADD_NO_TRIM,
                self.retention_s,
                _text(entry_id),
            ],
        )

    def queue_notice(self, pipe: Any, report: ExecutionReport) -> None:
        """Publish a non-final report that changes no record (a stale-epoch copy)."""
        pipe.xadd(keys.EXECUTIONS, {"type": report.TYPE, "data": encode_json(report)})

    def queue_republish(self, pipe: Any, cid: str, entry_id: Any) -> None:
        """A repeated intent whose record is final: its stored report again, once per
        new stream entry (``republish.lua``)."""
        self._call(
            pipe,
            "republish",
            [keys.order(cid), keys.EXECUTIONS],
            [_text(entry_id), ExecutionReport.TYPE, XADD_NO_TRIM],
        )

    def queue_finalize(
        self,
        pipe: Any,
        cid: str,
        report: ExecutionReport,
        *,
        position_qty: Decimal,
        quote_amount: Decimal,
        now_ms: int,
        balance_check: tuple[str, Decimal] | None = None,
        balance_deltas: dict[str, Decimal] | None = None,
        rejection: ExecutionReport | None = None,
        only_from: str = "",
    ) -> None:
        """Queue ``finalize.lua``: report + final record + risk figures (+ paper balances).
        ``only_from``: end the record only if it is in that status (else ``moved``)."""
        keys_, args = self._finalize_call(
            cid,
            report,
            position_qty=position_qty,
            quote_amount=quote_amount,
            now_ms=now_ms,
            balance_check=balance_check,
            balance_deltas=balance_deltas,
            rejection=rejection,
        )
        if only_from:
            args.append(only_from)
        self._call(pipe, "finalize", keys_, args)

    def _finalize_call(
        self,
        cid: str,
        report: ExecutionReport,
        *,
        position_qty: Decimal,
        quote_amount: Decimal,
        now_ms: int,
        balance_check: tuple[str, Decimal] | None = None,
        balance_deltas: dict[str, Decimal] | None = None,
        rejection: ExecutionReport | None = None,
    ) -> tuple[list[str], list[Any]]:
        deltas = balance_deltas or {}
        flat: list[str] = []
        for asset, delta in deltas.items():
            flat += [asset, str(delta)]
        return (
            [
                keys.order(cid),
                keys.RISK_LIMITS,
                keys.RISK_HALT,
                keys.RISK_STATE,
                keys.EXECUTIONS,
                self.active_key,
                self.open_key,
                self.balances_key,
            ],
            [
                _record_final_status(report),
                report.TYPE,
                encode_json(report).decode(),
                report.side.value,
                report.symbol,
                report.bot_id,
                str(position_qty),
                str(quote_amount),
                utc_day(now_ms),
                str(now_ms),
                str(XADD_NO_TRIM),
                cid,
                balance_check[0] if balance_check else "",
                str(balance_check[1]) if balance_check else "0",
                encode_json(rejection).decode() if rejection is not None else "",
                str(len(deltas)),
                str(self.equity_base),
                *flat,
                str(self.retention_s),
            ],
        )

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
    ) -> tuple[list[str], list[Any]]:
        """One intent of a ``trade.lua`` batch: its 3 own keys and its item.

        The refusal template is this intent's REJECTED report with the reason left as a
        mark (Lua quotes a refusal's reason into it); a failed balance check's report is
        the same template with ``rejection_reason``, so one report is encoded, not two."""
        akeys, aargs = self._admit_call(
            intent, intent_json, cid, order, rail_verdict, rails, now_ms, entry_ids[0]
        )
        _fkeys, fargs = self._finalize_call(
            cid,
            report,
            position_qty=position_qty,
            quote_amount=quote_amount,
            now_ms=now_ms,
            balance_check=balance_check,
            balance_deltas=balance_deltas,
            rejection=None,
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
        if rejection_reason is not None:
            fargs[14] = template.replace(_QUOTED_MARK, _json.encode(rejection_reason)).decode()
        return (
            [akeys[0], akeys[1], akeys[5]],
            [
                [_text(i) for i in entry_ids],
                template.decode(),
                aargs,
                fargs,
            ],
        )

    async def trade_many(
        self, items: list[tuple[list[str], list[Any]]], now_ms: int
    ) -> list[tuple[str, str, str]]:
        """Run ``trade.lua`` for a batch of :meth:`trade_item` results, one call per
        ``TRADE_CHUNK`` intents (each call atomic; all calls in one round trip): per intent
        (``done`` | ``rejected`` | ``exists``, status or kind, halt reason or reason or
        acked flag). Chunks bound how long one call holds Redis (~5 ms for 64)."""
        if not items:
            return []
        shared = [
            keys.RISK_LIMITS,
            keys.RISK_HALT,
            keys.RISK_STATE,
            keys.fleet_rate(rate_window(now_ms)),
            self.active_key,
            keys.EXECUTIONS,
            self.open_key,
            self.balances_key,
            keys.ORDER_INTENTS,
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(items), TRADE_CHUNK):
                chunk = items[start : start + TRADE_CHUNK]
                own: list[str] = []
                for item_keys, _item in chunk:
                    own += item_keys
                payload = _msgpack.encode(
                    [keys.GATEWAY_GROUP, ExecutionReport.TYPE, [item for _keys, item in chunk]]
                )
                pipe.evalsha(self._sha["trade"], len(shared) + len(own), *shared, *own, payload)
            replies = await pipe.execute()
        return [self.parse_trade(reply) for chunk in replies for reply in chunk]

    @staticmethod
    def parse_trade(reply: Any) -> tuple[str, str, str]:
        """(``done`` | ``rejected`` | ``exists``, status or kind, halt reason or reason)."""
        parts = [_text(p) for p in reply]
        return parts[0], parts[1], parts[2] if len(parts) > 2 else ""

    @staticmethod
    def parse_completion(reply: Any) -> Completion:
        parts = [_text(p) for p in reply]
        if parts[0] == "done":
            return Completion("done", status=parts[1], halt_reason=parts[2])
        if parts[0] in ("already", "moved"):
            return Completion(parts[0], status=parts[1])
        return Completion("missing")

    # --- transitions: compare-and-set on (status, rev) --------------------------------
    def _transition_call(
        self,
        cid: str,
        expected: dict[str, str] | None,
        new_status: str,
        now_ms: int,
        fields: dict[str, Any],
        report: ExecutionReport | None = None,
    ) -> tuple[list[str], list[Any]]:
        keys_ = [keys.order(cid)]
        if new_status == "OPEN":
            keys_ += [self.open_key, keys.EXECUTIONS]
        flat: list[Any] = []
        for name, value in fields.items():
            flat += [name, str(value)]
        return keys_, [
            expected.get("status", "") if expected is not None else "*",
            expected.get("rev", "0") if expected is not None else "0",
            new_status,
            now_ms,
            cid,
            ExecutionReport.TYPE,
            encode_json(report) if report is not None else "",
            XADD_NO_TRIM,
            *flat,
        ]

    async def transition(
        self, cid: str, expected: dict[str, str], new_status: str, now_ms: int, **fields: Any
    ) -> Transition:
        """Move ``order:{cid}`` to ``new_status`` only if it is still at the status and
        rev of ``expected`` (the record as the caller read it); on success ``expected``
        is updated to the new status and rev, so the caller's next step starts from it."""
        keys_, args = self._transition_call(cid, expected, new_status, now_ms, fields)
        reply = await self.redis.evalsha(self._sha["transition"], len(keys_), *keys_, *args)
        result = self.parse_transition(reply)
        if result.ok:
            expected["status"] = new_status
            expected["rev"] = result.rev
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
            fields["exchange_order_id"] = report.exchange_order_id
        keys_, args = self._transition_call(cid, expected, "OPEN", now_ms, fields, report)
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
        created = await self.redis.eval(
            _ADOPT,
            2,
            keys.order(cid),
            self.active_key,
            cid,
            intent_json,
            self.mode,
            now_ms,
            self.instance,
        )
        return bool(created)

    async def active(self) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.active_key))

    async def open(self) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.open_key))

    async def seed_paper_balances(self, balances: dict[str, Decimal]) -> None:
        """Initial paper balances, only for assets that have none yet."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for asset, amount in balances.items():
                pipe.hsetnx(self.balances_key, f"{asset}:free", str(amount))
                pipe.hsetnx(self.balances_key, f"{asset}:locked", "0")
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


def _record_final_status(report: ExecutionReport) -> str:
    return record_status_for(report).value


def fill_amounts(side_is_buy: bool, fill: PaperFill) -> tuple[Decimal, Decimal]:
    """(position quantity, quote amount) a paper fill adds to the risk figures."""
    if side_is_buy:
        return fill.qty, fill.quote + fill.commission
    return fill.qty, fill.quote - fill.commission
