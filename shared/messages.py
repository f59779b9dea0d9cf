"""Every message that travels on a botfleet stream, as a typed msgspec Struct.

A stream entry has two fields: ``type`` (the message's type name) and ``data`` (the
Struct as JSON, with a schema version ``v``). :func:`encode` and :func:`decode` are the
only way in and out; an entry that does not decode raises :class:`MessageDecodeError`
naming what is wrong, and the shells move it to ``stream:dead-letter``
(:mod:`shared.streams`). Money and quantities are ``Decimal`` (JSON strings on the
wire); times are epoch milliseconds.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import msgspec

SCHEMA_VERSION = 1


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
    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal = Decimal(0)
    trades: int = 0
    closed: bool = True
    event_time: int = 0


class Tick(Message, frozen=True, kw_only=True):
    """The latest traded price of a symbol."""

    TYPE: ClassVar[str] = "tick"
    symbol: str
    price: Decimal
    event_time: int


class BotCommand(Message, frozen=True, kw_only=True):
    """Wakes runners up; the truth is ``bot:{id}`` ``desired`` (DESIGN: desired state)."""

    TYPE: ClassVar[str] = "bot_command"
    command_id: str
    bot_id: str
    action: CommandAction
    issued_at: int


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
    epoch: int
    symbol: str
    side: Side
    order_type: OrderType = OrderType.MARKET
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    is_exit: bool = False
    reason: str = ""
    created_at: int = 0


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: int = 0


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
    exchange_order_id: int | None = None
    reason: str = ""
    mode: str = "paper"
    is_exit: bool = False
    epoch: int = 0
    ts: int = 0


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


class DeadLetter(Message, frozen=True, kw_only=True):
    """An entry that could not be decoded, kept with the reason."""

    TYPE: ClassVar[str] = "dead_letter"
    source: str
    entry_id: str
    reason: str
    fields: dict[str, str]
    service: str = ""
    ts: int = 0


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (Candle, Tick, BotCommand, OrderIntent, ExecutionReport, Event, DeadLetter)
}

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
