"""What the gateway's Lua knows, generated from Python: the one source of the scripts'
constants and argument layouts.

Each script in ``lua/`` is a body that names its keys ``k_<name>`` and its arguments by
name; this module puts above it

- a constants prelude: record statuses (:class:`RecordStatus`, ``FINAL``), field names
  (:class:`RecordField`, :class:`BotField`, :class:`RiskField`, the ``risk:limits``
  fields of :class:`RiskLimits`), order sides and the money scale (:mod:`shared.money`);
- ``lua/money.lua`` (exact comparisons of integer-unit strings);
- a header binding its keys and arguments to locals, from the key names and the
  ``array_like`` Struct below that Python also uses to build the call.

So a status, a field name or an argument position exists once, in Python, and a test
(``tests/unit/gateway/test_scripts.py``) checks that the ``.lua`` files spell none
themselves. Every script takes one argument, its Struct as a MessagePack array
(cmsgpack in Redis; no escaping of the JSON inside, cheaper than one argument each).
"""

from __future__ import annotations

import hashlib
from importlib import resources

import msgspec

from services.gateway.orders import FINAL, RecordField, RecordStatus
from services.gateway.risk_state import RiskField
from shared.bots import BotField
from shared.messages import Side
from shared.money import FIGURE_LIMIT, PLACES
from shared.risk_limits import RiskLimits

_encoder = msgspec.msgpack.Encoder()


class Args(msgspec.Struct, array_like=True):
    """Base of a script's arguments: encoded as a positional array, named in Lua."""


class AdmitArgs(Args):
    cid: str
    intent: str  # the OrderIntent as JSON
    epoch: int
    side: str
    is_exit: bool
    symbol: str
    qty: str  # the order's base quantity in units ('' when quote-sized)
    notional: str  # its estimated notional in units (reserved by an entry)
    rail_verdict: str  # '' = the static rails pass
    bot_limit: int  # orders per window (0 = none)
    fleet_limit: int
    counter_ttl: int  # seconds
    now: str  # epoch ms
    mode: str
    instance: str
    pos_qty_field: str
    symbol_exposure_field: str
    day_field: str
    entry: str  # the stream entry admitted ('' = none): repeats on others get the report


class RejectArgs(Args):
    cid: str
    intent: str
    report_type: str
    report: str  # the REJECTED ExecutionReport as JSON
    now: str
    mode: str
    instance: str
    reason: str
    maxlen: str  # of stream:executions, a string (as a Lua number 1e15 prints 1e+15)
    retention: int  # seconds a final record lives (0 = keeps)
    entry: str  # the stream entry refused


class FinalizeArgs(Args):
    status: str  # the record's final status
    report_type: str
    report: str  # the terminal ExecutionReport as JSON
    side: str
    qty: str  # units of base for the position (net of a base commission)
    quote: str  # units of quote: BUY spent incl. fee, SELL received net of fee
    now: str
    maxlen: str
    cid: str
    check_field: str  # balance field that must cover check_needed ('' = no check)
    check_needed: str  # units
    rejection: str  # the report published instead when the check fails
    deltas: list[tuple[str, str]]  # (balance field, units) applied unless rejected
    symbol_exposure_field: str
    pos_qty_field: str
    pos_cost_field: str
    day_field: str
    sell: bool  # a sell's figures follow, computed from expect_qty/expect_cost
    expect_qty: str  # the position they were computed from ('' = absent)
    expect_cost: str
    sold: str  # units
    cost_out: str
    realized: str
    closes: bool
    retention: int  # seconds the final record lives (0 = keeps)
    only_from: str  # end it only from this status ('' = any that is not final)
    reserved_hint: str  # the reservation the caller knows the record holds ('' = unknown)
    exposure_change: str  # quote - reserved_hint: the exposure's one change if it does


class TransitionArgs(Args):
    any_status: bool  # from any status that is not final (else: expected_status/rev)
    expected_status: str
    expected_rev: str
    new_status: str
    now: str
    cid: str
    report_type: str
    report: str  # published when the order rests ('' = none)
    maxlen: str
    fields: list[tuple[str, str]]  # more record fields to set


class RepublishArgs(Args):
    entry: str  # the stream entry repeating the intent
    answered_field: str  # record field marking that entry answered
    report_type: str
    maxlen: str


class AdoptArgs(Args):
    cid: str
    intent: str
    mode: str
    now: str
    instance: str


class UnitsArgs(Args):
    first_record: int  # KEYS position of the first active order record


class TradeItem(Args):
    ids: list[str]  # stream entries carrying the intent
    template: str  # its REJECTED report with the reason as REASON_MARK
    admit: AdmitArgs
    finalize: FinalizeArgs


class TradeArgs(Args):
    group: str
    report_type: str
    reason_mark: str  # in each template, where a refusal's reason goes (JSON-quoted)
    items: list[TradeItem]


class RecordsArgs(Args):
    orders: int  # how many order keys come first
    prices: int  # then price keys; then risk:state, then the position fields
    fields: list[str]


ADMIT_KEYS = (
    "order",
    "bot",
    "risk_limits",
    "risk_halt",
    "risk_state",
    "bot_rate",
    "fleet_rate",
    "active",
)
REJECT_KEYS = ("order", "executions")
FINALIZE_KEYS = (
    "order",
    "risk_limits",
    "risk_halt",
    "risk_state",
    "executions",
    "active",
    "open",
    "balances",
)
ADOPT_KEYS = ("order", "active")
TRANSITION_KEYS = ("order", "open", "executions")
REPUBLISH_KEYS = ("order", "executions")
UNITS_KEYS = ("marker", "risk_state", "paper_balances")
TRADE_KEYS = (
    "risk_limits",
    "risk_halt",
    "risk_state",
    "fleet_rate",
    "active",
    "executions",
    "open",
    "balances",
    "intents",
)
TRADE_ITEM_KEYS = ("order", "bot", "bot_rate")

_SPECS: dict[str, tuple[tuple[str, ...], type[Args]]] = {
    "admit": (ADMIT_KEYS, AdmitArgs),
    "reject": (REJECT_KEYS, RejectArgs),
    "finalize": (FINALIZE_KEYS, FinalizeArgs),
    "adopt": (ADOPT_KEYS, AdoptArgs),
    "transition": (TRANSITION_KEYS, TransitionArgs),
    "republish": (REPUBLISH_KEYS, RepublishArgs),
    "units": (UNITS_KEYS, UnitsArgs),
    "trade": (TRADE_KEYS, TradeArgs),
}


def keys_of(spec: tuple[str, ...], **named: str) -> list[str]:
    """The KEYS list of a script, from keys given by name (every name, no other)."""
    if len(named) != len(spec):
        raise TypeError(f"keys {sorted(named)} do not match {spec}")
    try:
        return [named[name] for name in spec]
    except KeyError as exc:
        raise TypeError(f"keys {sorted(named)} do not match {spec}") from exc


def encode(args: Args) -> bytes:
    return _encoder.encode(args)


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _table(name: str, pairs: dict[str, str]) -> str:
    body = ", ".join(f"{k} = {_lua_string(v)}" for k, v in pairs.items())
    return f"local {name} = {{{body}}}\n"


def prelude() -> str:
    """The constants every script sees, from the Python types that define them."""
    return "".join(
        [
            "-- generated by services/gateway/scripts.py: do not spell these in a script\n",
            _table("ST", {s.name: s.value for s in RecordStatus}),
            "local FINAL = {"
            + ", ".join(f"[ST.{s.name}] = true" for s in sorted(FINAL, key=str))
            + "}\n",
            _table("REC", {f.name: f.value for f in RecordField}),
            _table("BOT", {f.name: f.value for f in BotField}),
            _table("RISK", {f.name: f.value for f in RiskField}),
            _table("LIM", {name: name for name in RiskLimits.model_fields}),
            _table("SIDE", {s.name: s.value for s in Side}),
            f"local PLACES = {PLACES}\n",
            f"local FIGURE_LIMIT = {_lua_string(str(FIGURE_LIMIT))}\n",
        ]
    )


def _fields(struct: type[Args]) -> tuple[str, ...]:
    return struct.__struct_fields__


def _converters(struct: type[Args]) -> str:
    """``named_<Struct>(array) -> table`` and ``array_<Struct>(table) -> array``."""
    fields = _fields(struct)
    named = ", ".join(f"{f} = t[{i}]" for i, f in enumerate(fields, 1))
    array = ", ".join(f"t.{f}" for f in fields)
    return (
        f"local function named_{struct.__name__}(t) return {{{named}}} end\n"
        f"local function array_{struct.__name__}(t) return {{{array}}} end\n"
    )


def _locals(names: tuple[str, ...], source: str, *, prefix: str = "") -> str:
    """``local <prefix><n1>, ... = <source of n1>, ...`` (source: a format of i and name)."""
    targets = ", ".join(prefix + n for n in names)
    values = ", ".join(source.format(i=i, name=n) for i, n in enumerate(names, 1))
    return f"local {targets} = {values}\n"


def _header(spec: tuple[str, ...], struct: type[Args], *, standalone: bool) -> str:
    """Binds ``k_<name>`` and the argument names: from KEYS and ARGV[1] when the script
    runs alone, from a table of keys by name (K) and an argument array (A) when
    ``trade.lua`` calls it as a function."""
    if standalone:
        return (
            _locals(spec, "KEYS[{i}]", prefix="k_")
            + "local A = cmsgpack.unpack(ARGV[1])\n"
            + _locals(_fields(struct), "A[{i}]")
        )
    return _locals(spec, "K.{name}", prefix="k_") + _locals(_fields(struct), "A[{i}]")


def _body(name: str) -> str:
    return resources.files("services.gateway").joinpath("lua", name).read_text()


def build() -> dict[str, str]:
    """Script name -> full text (prelude, money helpers, header, body)."""
    top = prelude() + _body("money.lua")
    scripts = {
        name: top + _header(*_SPECS[name], standalone=True) + _body(f"{name}.lua")
        for name in ("admit", "reject", "finalize", "adopt", "units", "transition", "republish")
    }
    scripts["records"] = top + _converters(RecordsArgs) + _body("records.lua")
    functions = "".join(
        f"local function {name}(K, A)\n{_header(*_SPECS[name], standalone=False)}"
        f"{_body(f'{name}.lua')}\nend\n"
        for name in ("admit", "reject", "finalize")
    )
    item_keys = ", ".join(f"K.{n}" for n in TRADE_ITEM_KEYS)
    item_sources = ", ".join(f"KEYS[base + {i}]" for i in range(1, len(TRADE_ITEM_KEYS) + 1))
    scripts["trade"] = (
        top
        + functions
        + "".join(
            _converters(s) for s in (TradeArgs, TradeItem, AdmitArgs, RejectArgs, FinalizeArgs)
        )
        + "local K = {"
        + ", ".join(f"{n} = KEYS[{i}]" for i, n in enumerate(TRADE_KEYS, 1))
        + "}\n"
        + f"local SHARED_KEYS, ITEM_KEYS = {len(TRADE_KEYS)}, {len(TRADE_ITEM_KEYS)}\n"
        + f"local function item_keys(base) {item_keys} = {item_sources} end\n"
        + "local P = named_TradeArgs(cmsgpack.unpack(ARGV[1]))\n"
        + _body("trade.lua")
    )
    return scripts


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()
