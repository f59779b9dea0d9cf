"""Every message that travels on a botfleet stream, as a typed msgspec Struct.

A stream entry has two fields: ``type`` (the message's type name) and ``data`` (the
Struct as JSON, with a schema version ``v``). :func:`encode` and :func:`decode` are the
only way in and out; an entry that does not decode raises :class:`MessageDecodeError`
naming what is wrong, and the shells move it to ``stream:dead-letter``
(:mod:`shared.streams`). Money and quantities are ``Decimal`` (JSON strings on the
wire); times are epoch milliseconds.

Decoding refuses, naming the field, anything that can never be a valid message (issue
14), so no loop does arithmetic on it or builds a key of it: a money field that is not
finite, out of range (``|x| < 1e18``; a non-zero ``|x| >= 1e-30``) or of the wrong
sign; an id, a symbol or an interval that does not match its pattern; an integer
outside int64 or a negative time. Integer ranges are msgspec constraints; the rest is
each Struct's ``__post_init__``, so it holds for every decoder of the type (the runner
and the API build their own) and for a Struct built in code. The checks sit on hot
paths: an amount costs two comparisons (the wording of a refusal is worked out only
for a bad value), and symbols, intervals and bot ids, which repeat, are matched once
and remembered.

How valid fields combine into an order (exactly one of quantity and quote quantity on
a MARKET intent, a price on a LIMIT one) is the gateway's sizing: it answers the bot
with a REJECTED report, which ends its pending intent, where a dead letter would leave
it resending.
"""

from __future__ import annotations

import enum
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec

from shared.bots import BOT_ID_PATTERN, CLIENT_ORDER_ID_PATTERN, INTENT_ID_PATTERN

SCHEMA_VERSION = 1

# --- what a field may hold -------------------------------------------------------------
# Binance documents symbols as ``^[A-Z0-9-_.]{1,20}$``; the reference (§2.1) adds that
# Unicode symbol names exist, so a non-ASCII letter or digit passes too. Never a brace
# (hash tags), a colon (subscription members), a space or a lowercase ASCII letter.
SYMBOL_PATTERN = r"^(?:[A-Z0-9_.-]|[^\W\x00-\x7f]){1,20}$"
# The shape of a Binance interval name ("1m", "12h", "1M"); which ones exist is
# shared.binance.intervals (it imports this module, so it is not imported here).
INTERVAL_PATTERN = r"^[1-9][0-9]?[smhdwM]$"
INT64_MAX = 2**63 - 1

Millis = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]  # epoch ms (0: not set)
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Int64 = Annotated[int, msgspec.Meta(ge=-INT64_MAX - 1, le=INT64_MAX)]  # venue ids (-1: none)

_LIMIT = Decimal("1e18")  # no price, quantity or amount of ours comes near it
# The smallest real non-zero amount is a fee of a fraction of a satoshi (~1e-12); a
# smaller one is crafted. No bound on decimal places: the runner's own sizing divides
# at Decimal's 28 digits (a quote of 333.3333333333333333333333333 is legitimate).
_MIN = Decimal("1e-30")

# fullmatch, never search: ``$`` also matches before a trailing newline.
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)
_INTERVAL_RE = re.compile(INTERVAL_PATTERN)
_BOT_ID_RE = re.compile(BOT_ID_PATTERN)
_INTENT_ID_RE = re.compile(INTENT_ID_PATTERN)
_CLIENT_ORDER_ID_RE = re.compile(CLIENT_ORDER_ID_PATTERN)
_MEMO_MAX = 50_000  # remembered valid names per kind (a fleet's bots, an exchange's symbols)
_SYMBOLS: set[str] = set()
_INTERVALS: set[str] = set()
_BOT_IDS: set[str] = set()


def _check_name(name: str, value: str, pattern: re.Pattern[str], seen: set[str] | None) -> None:
    """Raise ValueError unless ``value`` matches ``pattern`` (msgspec reports it as a
    ValidationError when decoding); ``seen`` remembers the values already matched."""
    if seen is not None and value in seen:
        return
    if pattern.fullmatch(value) is None:
        raise ValueError(f"{name} {value[:80]!r} does not match {pattern.pattern}")
    if seen is not None and len(seen) < _MEMO_MAX:
        seen.add(value)


def _amount_problem(name: str, value: Decimal, positive: bool) -> str:
    """Why ``value`` is not an amount (``> 0`` when ``positive``, else ``>= 0``), or ""."""
    if not value.is_finite():
        return f"{name} {value} is not a finite number"
    if value >= _LIMIT or value <= -_LIMIT:
        return f"{name} {value} is out of range (|{name}| < 1e18)"
    if value < 0 or (positive and value == 0):
        return f"{name} {value} must be {'positive' if positive else 'non-negative'}"
    if value and value < _MIN:
        return f"{name} {value} is too small (a non-zero amount is >= 1e-30)"
    return ""


def _check_positive(name: str, value: Decimal) -> None:
    try:
        if _MIN <= value < _LIMIT:
            return
    except InvalidOperation:  # a NaN: the wording below says so
        pass
    raise ValueError(_amount_problem(name, value, True))


def _check_amounts(names: tuple[str, ...], values: tuple[Decimal, ...], positive: bool) -> None:
    """The slow path of a failed fast check: raise naming the first bad field."""
    for name, value in zip(names, values, strict=True):
        problem = _amount_problem(name, value, positive)
        if problem:
            raise ValueError(problem)


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class ExecutionStatus(enum.StrEnum):
    """Status of an execution report. Terminal ones end an intent."""

    NEW = "NEW"  # resting on the book (not terminal)
    PARTIALLY_FILLED = "PARTIALLY_FILLED"  # terminal only when ``final`` is set
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class CommandAction(enum.StrEnum):
    START = "start"
    STOP = "stop"
    UPDATE = "update"
    DELETE = "delete"


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every stream message. ``TYPE`` is the entry's ``type`` field."""

    TYPE: ClassVar[str] = ""
    v: int = SCHEMA_VERSION


class Candle(Message, frozen=True, kw_only=True):
    """One kline. ``closed`` is False for an update of a still-open candle."""

    TYPE: ClassVar[str] = "candle"
    symbol: str
    interval: str
    open_time: Millis
    close_time: Millis
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal = Decimal(0)
    trades: Count = 0
    closed: bool = True
    event_time: Millis = 0

    def __post_init__(self) -> None:
        if self.symbol not in _SYMBOLS:
            _check_name("symbol", self.symbol, _SYMBOL_RE, _SYMBOLS)
        if self.interval not in _INTERVALS:
            _check_name("interval", self.interval, _INTERVAL_RE, _INTERVALS)
        # No check that low and high hold open and close: Binance's own documented
        # kline (tests/fixtures/binance/ws_kline_open.json) has open < low.
        volume, quote_volume = self.volume, self.quote_volume
        try:
            fine = (
                _MIN <= self.open < _LIMIT
                and _MIN <= self.high < _LIMIT
                and _MIN <= self.low < _LIMIT
                and _MIN <= self.close < _LIMIT
                and (_MIN <= volume < _LIMIT or volume == 0)
                and (_MIN <= quote_volume < _LIMIT or quote_volume == 0)
            )
        except InvalidOperation:  # a NaN
            fine = False
        if not fine:
            _check_amounts(_CANDLE_PRICES, (self.open, self.high, self.low, self.close), True)
            _check_amounts(_CANDLE_VOLUMES, (volume, quote_volume), False)
        if self.close_time < self.open_time:
            raise ValueError(f"close_time {self.close_time} is before open_time {self.open_time}")


_CANDLE_PRICES = ("open", "high", "low", "close")
_CANDLE_VOLUMES = ("volume", "quote_volume")


class Tick(Message, frozen=True, kw_only=True):
    """The latest traded price of a symbol."""

    TYPE: ClassVar[str] = "tick"
    symbol: str
    price: Decimal
    event_time: Millis

    def __post_init__(self) -> None:
        if self.symbol not in _SYMBOLS:
            _check_name("symbol", self.symbol, _SYMBOL_RE, _SYMBOLS)
        _check_positive("price", self.price)


class BotCommand(Message, frozen=True, kw_only=True):
    """Wakes runners up; the truth is ``bot:{id}`` ``desired`` (DESIGN: desired state)."""

    TYPE: ClassVar[str] = "bot_command"
    command_id: str  # a ULID, like a bot id
    bot_id: str
    action: CommandAction
    issued_at: Millis

    def __post_init__(self) -> None:
        _check_name("command_id", self.command_id, _BOT_ID_RE, None)
        if self.bot_id not in _BOT_IDS:
            _check_name("bot_id", self.bot_id, _BOT_ID_RE, _BOT_IDS)


class OrderIntent(Message, frozen=True, kw_only=True):
    """A bot's decision to trade. ``intent_id`` comes from the decision (bot, trigger,
    action), so re-emitting the same decision gives the same id.

    Exactly one of ``quantity`` (base) and ``quote_quantity`` is set for MARKET orders;
    LIMIT orders carry ``quantity`` and ``price``. ``is_exit`` marks an order that
    reduces a position: portfolio risk never blocks it.
    """

    TYPE: ClassVar[str] = "order_intent"
    intent_id: str
    bot_id: str
    epoch: Count
    symbol: str
    side: Side
    order_type: OrderType = OrderType.MARKET
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    is_exit: bool = False
    reason: str = ""
    created_at: Millis = 0

    def __post_init__(self) -> None:
        _check_name("intent_id", self.intent_id, _INTENT_ID_RE, None)
        if self.bot_id not in _BOT_IDS:
            _check_name("bot_id", self.bot_id, _BOT_ID_RE, _BOT_IDS)
        if self.symbol not in _SYMBOLS:
            _check_name("symbol", self.symbol, _SYMBOL_RE, _SYMBOLS)
        if self.quantity is not None:
            _check_positive("quantity", self.quantity)
        if self.quote_quantity is not None:
            _check_positive("quote_quantity", self.quote_quantity)
        if self.price is not None:
            _check_positive("price", self.price)


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: Int64 = 0

    def __post_init__(self) -> None:
        _check_positive("fill price", self.price)
        _check_positive("fill qty", self.qty)
        fee = self.commission
        try:
            fine = _MIN <= fee < _LIMIT or fee == 0
        except InvalidOperation:
            fine = False
        if not fine:
            raise ValueError(_amount_problem("fill commission", fee, False))


class ExecutionReport(Message, frozen=True, kw_only=True):
    """What became of an intent. Exactly one report per intent has ``final`` set."""

    TYPE: ClassVar[str] = "execution_report"
    intent_id: str
    client_order_id: str
    bot_id: str
    symbol: str
    side: Side
    status: ExecutionStatus
    final: bool
    executed_qty: Decimal = Decimal(0)
    cumulative_quote: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    commission_asset: str = ""
    fills: tuple[Fill, ...] = ()
    exchange_order_id: Int64 | None = None
    reason: str = ""
    mode: str = "paper"
    is_exit: bool = False
    epoch: Count = 0
    ts: Millis = 0

    def __post_init__(self) -> None:
        _check_name("intent_id", self.intent_id, _INTENT_ID_RE, None)
        _check_name("client_order_id", self.client_order_id, _CLIENT_ORDER_ID_RE, None)
        if self.bot_id not in _BOT_IDS:
            _check_name("bot_id", self.bot_id, _BOT_ID_RE, _BOT_IDS)
        if self.symbol not in _SYMBOLS:
            _check_name("symbol", self.symbol, _SYMBOL_RE, _SYMBOLS)
        amounts = (self.executed_qty, self.cumulative_quote, self.avg_price, self.commission)
        try:
            fine = all(_MIN <= a < _LIMIT or a == 0 for a in amounts)
        except InvalidOperation:
            fine = False
        if not fine:
            _check_amounts(_REPORT_AMOUNTS, amounts, False)


_REPORT_AMOUNTS = ("executed_qty", "cumulative_quote", "avg_price", "commission")


class Event(Message, frozen=True, kw_only=True):
    """Something people should see: status changes, risk halts, errors."""

    TYPE: ClassVar[str] = "event"
    kind: str
    message: str
    level: str = "info"
    service: str = ""
    bot_id: str | None = None
    symbol: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    ts: int = 0

    def __post_init__(self) -> None:
        # JSON has no NaN or Infinity: such a detail would travel as null and come back
        # changed, so it is refused where the event is made.
        _check_finite_details(self.details, "details")


def _check_finite_details(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite_details(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite_details(item, f"{where}[{i}]")


class DeadLetter(Message, frozen=True, kw_only=True):
    """An entry that could not be decoded, kept with the reason."""

    TYPE: ClassVar[str] = "dead_letter"
    source: str
    entry_id: str
    reason: str
    fields: dict[str, str]
    service: str = ""
    ts: int = 0


class BacktestJob(Message, frozen=True, kw_only=True):
    """A backtest queued by the API for a backtest worker: ``request`` is the validated
    ``shared.backtests.BacktestRequest`` as JSON (the worker validates it again)."""

    TYPE: ClassVar[str] = "backtest_job"
    job_id: str
    request: str
    ts: int = 0


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Candle, Tick, BotCommand, OrderIntent, ExecutionReport, Event, DeadLetter, BacktestJob,
    )
}  # fmt: skip

_encoder = msgspec.json.Encoder(decimal_format="string")
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(cls) for name, cls in MESSAGE_TYPES.items()
}

M = TypeVar("M", bound=Message)


class MessageDecodeError(ValueError):
    """A stream entry is not a valid botfleet message; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(message: Message) -> dict[str, bytes | str]:
    """Struct -> stream fields ``type`` + ``data``."""
    return {"type": message.TYPE, "data": _encoder.encode(message)}


def encode_json(message: msgspec.Struct) -> bytes:
    """Any Struct as JSON with Decimals as strings (the one JSON encoder)."""
    return _encoder.encode(message)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def decode(fields: dict[Any, Any]) -> Message:
    """Stream fields -> Struct; raises :class:`MessageDecodeError` naming the problem."""
    raw_type = fields.get("type", fields.get(b"type"))
    raw_data = fields.get("data", fields.get(b"data"))
    if raw_type is None:
        raise MessageDecodeError("missing field 'type'")
    if raw_data is None:
        raise MessageDecodeError("missing field 'data'")
    type_name = _text(raw_type)
    decoder = _decoders.get(type_name)
    if decoder is None:
        raise MessageDecodeError(f"unknown message type {type_name!r}")
    try:
        message = decoder.decode(raw_data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MessageDecodeError(f"invalid {type_name}: {exc}") from exc
    except UnicodeError as exc:  # a str holding a lone surrogate
        raise MessageDecodeError(f"invalid {type_name}: {exc}") from exc
    except TypeError as exc:  # data that is not bytes or str (checked here, not on every call)
        raise MessageDecodeError(f"invalid {type_name}: data is {type(raw_data).__name__}") from exc
    if message.v > SCHEMA_VERSION:
        raise MessageDecodeError(
            f"{type_name} schema version {message.v} is newer than {SCHEMA_VERSION}"
        )
    return message


def decode_as(fields: dict[Any, Any], cls: type[M]) -> M:
    """Like :func:`decode`, but the entry must be of type ``cls``."""
    message = decode(fields)
    if not isinstance(message, cls):
        raise MessageDecodeError(f"expected {cls.TYPE}, got {message.TYPE}")
    return message


def stringify_fields(fields: dict[Any, Any]) -> dict[str, str]:
    """Raw stream fields as text, for dead letters and logs."""
    return {_text(k): _text(v) for k, v in fields.items()}
