"""Pure conversions between venue payloads and botfleet's own types.

Owns: routing a WebSocket frame to its typed event (:func:`parse_ws_frame`), turning
venue Structs into ``shared.messages`` types (``Candle``, ``Tick``, ``Fill``,
``ExecutionStatus``), decoding REST bodies, and the reverse direction the simulator
needs (candle -> kline event / REST row). Every function takes its context
explicitly (symbol, interval, ``now_ms``) and never a client (STYLE: NautilusTrader's
warning). Venue Structs stop here; nothing past this module sees one.

Frame routing (reference §1, §2, §3.14): one small head Struct is decoded first;
a combined frame is routed on its stream name, a raw frame on its ``"e"`` field, a
control reply on ``result``/``error``, a WS-API user-data frame on
``subscriptionId``/``event``. Decoders are built once, at import. Anything else
becomes an :class:`UnknownFrame` with the reason — never a dict, never an exception.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar

import msgspec

from shared.binance.intervals import check_interval, close_time_of
from shared.binance.rules import SymbolRules, rules_from_symbol_info
from shared.binance.schemas import (
    BalanceUpdateEvent,
    ErrorBody,
    EventStreamTerminatedEvent,
    ExchangeInfo,
    ExecutionReportEvent,
    Kline,
    KlineEvent,
    MiniTickerEvent,
    OrderFull,
    OutboundAccountPositionEvent,
    RestKline,
    ServerShutdownEvent,
    WsErrorReply,
    WsReply,
)
from shared.binance.streams import parse_stream_name
from shared.messages import Candle, ExecutionStatus, Fill, Tick

T = TypeVar("T")

_RAW_EXCERPT = 2000  # characters of a bad frame kept for the dead letter


class UnknownFrame(msgspec.Struct, frozen=True, kw_only=True):
    """A frame botfleet cannot use: ``reason`` says why, ``raw`` is its start (for dead letters)."""

    reason: str
    raw: str


class MiniTickerBatch(msgspec.Struct, frozen=True, kw_only=True):
    """``!miniTicker@arr``: the tickers that changed in the last second (§2.4)."""

    tickers: tuple[MiniTickerEvent, ...]


UserDataEvent = (
    ExecutionReportEvent
    | OutboundAccountPositionEvent
    | BalanceUpdateEvent
    | EventStreamTerminatedEvent
)
WsFrame = (
    KlineEvent
    | MiniTickerEvent
    | MiniTickerBatch
    | ServerShutdownEvent
    | ExecutionReportEvent
    | OutboundAccountPositionEvent
    | BalanceUpdateEvent
    | EventStreamTerminatedEvent
    | WsReply
    | WsErrorReply
    | UnknownFrame
)


class _Head(msgspec.Struct):
    """The keys that tell frames apart; everything else is skipped or kept raw."""

    e: str | None = None  # event type of a raw (unwrapped) event
    stream: str | None = None  # combined-stream wrapper (§1)
    data: msgspec.Raw = msgspec.Raw()
    result: msgspec.Raw = msgspec.Raw()  # control / WS-API success reply (§2.2)
    error: msgspec.Raw = msgspec.Raw()  # control / WS-API error reply
    id: int | str | None = None
    status: int | None = None  # WS-API replies (§6)
    subscriptionId: int | None = None  # WS-API user-data wrapper (§3.14)
    event: msgspec.Raw = msgspec.Raw()


_head_decoder = msgspec.json.Decoder(_Head)
_mini_ticker_array_decoder = msgspec.json.Decoder(list[MiniTickerEvent])
_error_body_decoder = msgspec.json.Decoder(ErrorBody)
_reply_result_decoder = msgspec.json.Decoder(Any)
# Raw events routed on "e".
_event_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    cls.__struct_config__.tag: msgspec.json.Decoder(cls)  # type: ignore[misc]
    for cls in (
        KlineEvent,
        MiniTickerEvent,
        ServerShutdownEvent,
        ExecutionReportEvent,
        OutboundAccountPositionEvent,
        BalanceUpdateEvent,
        EventStreamTerminatedEvent,
    )
}
_user_event_decoder: msgspec.json.Decoder[UserDataEvent] = msgspec.json.Decoder(UserDataEvent)  # type: ignore[arg-type]
# Combined-stream data routed on the stream name (STYLE: "a table from stream name to handler").
_stream_kind_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    "kline": _event_decoders["kline"],
    "miniTicker": _event_decoders["24hrMiniTicker"],
    "miniTickerArr": _mini_ticker_array_decoder,
    "serverShutdown": _event_decoders["serverShutdown"],
}


@lru_cache(maxsize=8192)
def _decoder_for_stream(name: str) -> msgspec.json.Decoder[Any] | None:
    parsed = parse_stream_name(name)
    return None if parsed is None else _stream_kind_decoders[parsed.kind]


def _excerpt(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:_RAW_EXCERPT]


def _finish(value: Any) -> WsFrame:
    if isinstance(value, list):
        return MiniTickerBatch(tickers=tuple(value))
    result: WsFrame = value
    return result


def parse_ws_frame(raw: bytes | str) -> WsFrame:
    """Decode one WebSocket text frame into its typed event, reply or :class:`UnknownFrame`.

    Handles raw (``/ws``) and combined (``/stream``) market frames, control replies and
    errors (§2.2), and user-data events, wrapped by the WS API (§3.14) or not (legacy).
    """
    try:
        head = _head_decoder.decode(raw)
    except msgspec.ValidationError:
        # Not an object: a raw ``!miniTicker@arr`` frame is a bare array (§2.4).
        try:
            return _finish(_mini_ticker_array_decoder.decode(raw))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return UnknownFrame(reason=f"unexpected frame: {exc}", raw=_excerpt(raw))
    except msgspec.DecodeError as exc:
        return UnknownFrame(reason=f"invalid JSON: {exc}", raw=_excerpt(raw))

    try:
        if head.stream is not None:
            decoder = _decoder_for_stream(head.stream)
            if decoder is None:
                return UnknownFrame(reason=f"unknown stream {head.stream!r}", raw=_excerpt(raw))
            if not head.data:
                return UnknownFrame(reason="combined frame without data", raw=_excerpt(raw))
            return _finish(decoder.decode(head.data))
        if head.e is not None:
            decoder = _event_decoders.get(head.e)
            if decoder is None:
                return UnknownFrame(reason=f"unknown event type {head.e!r}", raw=_excerpt(raw))
            return _finish(decoder.decode(raw))
        if head.subscriptionId is not None and head.event:
            return _user_event_decoder.decode(head.event)
        if head.error:
            return WsErrorReply(
                error=_error_body_decoder.decode(head.error),
                id=head.id,
                status=msgspec.UNSET if head.status is None else head.status,
            )
        if head.result:
            return WsReply(
                result=_reply_result_decoder.decode(head.result),
                id=head.id,
                status=msgspec.UNSET if head.status is None else head.status,
            )
    except msgspec.ValidationError as exc:
        return UnknownFrame(reason=f"invalid payload: {exc}", raw=_excerpt(raw))
    return UnknownFrame(reason="frame matches no known shape", raw=_excerpt(raw))


# --- market data -> shared.messages ---------------------------------------------------------


def _decimal(value: str, field: str) -> Decimal:
    try:
        return Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError(f"invalid decimal {value!r} in {field}") from None


def kline_to_candle(k: Kline, *, event_time: int = 0) -> Candle:
    """The ``k`` object of a kline event as a :class:`Candle`; ``closed`` is the venue's ``x``."""
    return Candle(
        symbol=k.s,
        interval=k.i,
        open_time=k.t,
        close_time=k.T,
        open=_decimal(k.o, "open"),
        high=_decimal(k.h, "high"),
        low=_decimal(k.l, "low"),
        close=_decimal(k.c, "close"),
        volume=_decimal(k.v, "volume"),
        quote_volume=_decimal(k.q, "quote volume"),
        trades=k.n,
        closed=k.x,
        event_time=event_time,
    )


def kline_event_to_candle(event: KlineEvent) -> Candle:
    """A kline stream event as a :class:`Candle` (Decimal prices, ``event_time`` = ``E``)."""
    return kline_to_candle(event.k, event_time=event.E)


def mini_ticker_to_tick(event: MiniTickerEvent) -> Tick:
    """A mini-ticker event as the symbol's latest price (its close ``c``)."""
    return Tick(symbol=event.s, price=_decimal(event.c, "close"), event_time=event.E)


_rest_klines_decoder = msgspec.json.Decoder(list[RestKline])


def decode_rest_klines(body: bytes | str) -> list[RestKline]:
    """The body of ``GET /api/v3/klines`` (§3.4)."""
    return _rest_klines_decoder.decode(body)


def rest_klines_to_candles(
    symbol: str, interval: str, rows: Sequence[RestKline], now_ms: int
) -> list[Candle]:
    """REST kline rows as candles, one per row, in order, none skipped.

    A row is ``closed`` iff ``now_ms`` (the venue's clock, best estimate) is past its
    close time: the last row of a backfill is usually the still-open candle (§3.4).
    ``event_time`` is 0: REST rows have none.
    """
    check_interval(interval)
    candles = []
    for row in rows:
        candles.append(
            Candle(
                symbol=symbol,
                interval=interval,
                open_time=row.open_time,
                close_time=row.close_time,
                open=_decimal(row.open, "open"),
                high=_decimal(row.high, "high"),
                low=_decimal(row.low, "low"),
                close=_decimal(row.close, "close"),
                volume=_decimal(row.volume, "volume"),
                quote_volume=_decimal(row.quote_volume, "quote volume"),
                trades=row.trades,
                closed=now_ms > row.close_time,
            )
        )
    return candles


# --- candle -> venue payloads (the simulator's direction) -------------------------------------


def _plain(value: Decimal) -> str:
    return format(value, "f")


def candle_to_rest_kline(
    candle: Candle, *, taker_buy_base: Decimal | None = None, taker_buy_quote: Decimal | None = None
) -> RestKline:
    """A candle as a ``GET /api/v3/klines`` row; taker volumes default to 0."""
    return RestKline(
        open_time=candle.open_time,
        open=_plain(candle.open),
        high=_plain(candle.high),
        low=_plain(candle.low),
        close=_plain(candle.close),
        volume=_plain(candle.volume),
        close_time=candle.close_time,
        quote_volume=_plain(candle.quote_volume),
        trades=candle.trades,
        taker_buy_base_volume=_plain(taker_buy_base or Decimal(0)),
        taker_buy_quote_volume=_plain(taker_buy_quote or Decimal(0)),
    )


def candle_to_kline_event(
    candle: Candle,
    *,
    event_time: int,
    first_trade_id: int = -1,
    last_trade_id: int = -1,
) -> KlineEvent:
    """A candle (open or closed) as a ``<symbol>@kline_<interval>`` event (§2.3).

    The close time is recomputed from the interval, so the event obeys
    ``T = next open - 1`` even if the candle was built carelessly.
    """
    k = Kline(
        t=candle.open_time,
        T=close_time_of(candle.interval, candle.open_time),
        s=candle.symbol,
        i=candle.interval,
        f=first_trade_id,
        L=last_trade_id,
        o=_plain(candle.open),
        c=_plain(candle.close),
        h=_plain(candle.high),
        l=_plain(candle.low),
        v=_plain(candle.volume),
        n=candle.trades,
        x=candle.closed,
        q=_plain(candle.quote_volume),
        V="0",
        Q="0",
    )
    return KlineEvent(E=event_time, s=candle.symbol, k=k)


# --- REST bodies -------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode_body(body: bytes | str, type_: type[T]) -> T:
    """Decode a REST body into a venue Struct (or ``list[Struct]``); decoders are cached.

    Raises ``msgspec.DecodeError`` / ``msgspec.ValidationError`` naming the bad field.
    """
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    result: T = decoder.decode(body)
    return result


def encode_payload(payload: Any) -> bytes:
    """Any venue Struct (or list of them) as the JSON the venue sends."""
    return _encoder.encode(payload)


def parse_exchange_info(payload: bytes | str | ExchangeInfo) -> dict[str, SymbolRules]:
    """exchangeInfo (the body, or already decoded) as ``symbol -> SymbolRules`` (§3.3)."""
    info = payload if isinstance(payload, ExchangeInfo) else decode_body(payload, ExchangeInfo)
    return {s.symbol: rules_from_symbol_info(s) for s in info.symbols}


# --- orders -> shared.messages -------------------------------------------------------------------

# Order status (§8) -> what an execution report says. EXPIRED_IN_MATCH is an STP
# expiry; PENDING_NEW (OTO leg) and PENDING_CANCEL (unused) are not terminal.
_ORDER_STATUS: dict[str, ExecutionStatus] = {
    "NEW": ExecutionStatus.NEW,
    "PENDING_NEW": ExecutionStatus.NEW,
    "PARTIALLY_FILLED": ExecutionStatus.PARTIALLY_FILLED,
    "FILLED": ExecutionStatus.FILLED,
    "CANCELED": ExecutionStatus.CANCELED,
    "PENDING_CANCEL": ExecutionStatus.NEW,
    "REJECTED": ExecutionStatus.REJECTED,
    "EXPIRED": ExecutionStatus.EXPIRED,
    "EXPIRED_IN_MATCH": ExecutionStatus.EXPIRED,
}


def execution_status(order_status: str) -> ExecutionStatus:
    """The :class:`ExecutionStatus` of a venue order status; ``ValueError`` if unknown."""
    try:
        return _ORDER_STATUS[order_status]
    except KeyError:
        raise ValueError(f"unknown Binance order status {order_status!r}") from None


def order_fills(response: OrderFull) -> tuple[Fill, ...]:
    """The fills of a FULL order response as :class:`shared.messages.Fill` (Decimal)."""
    return tuple(
        Fill(
            price=_decimal(f.price, "fill price"),
            qty=_decimal(f.qty, "fill qty"),
            commission=_decimal(f.commission, "commission"),
            commission_asset=f.commissionAsset,
            trade_id=f.tradeId,
        )
        for f in response.fills
    )
