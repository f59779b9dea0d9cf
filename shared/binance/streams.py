"""Market stream names, stream URLs and the live control messages (reference §1, §2).

Owns: how a (symbol, interval) becomes ``btcusdt@kline_1m`` and back, the raw and
combined stream URLs, and the SUBSCRIBE / UNSUBSCRIBE requests — used by ingestion to
subscribe and by the simulator to understand what was asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from shared.binance.intervals import check_interval
from shared.binance.schemas import WsRequest

StreamKind = Literal["kline", "miniTicker", "miniTickerArr", "serverShutdown"]

MAX_STREAMS_PER_CONNECTION = 1024  # §2.1
MAX_CONTROL_MESSAGES_PER_SECOND = 5  # §2.1: pings, pongs and JSON control messages count
SERVER_SHUTDOWN_STREAM = "!serverShutdown"  # §2.1 combined-stream name of the event
ALL_MINI_TICKERS_STREAM = "!miniTicker@arr"


class StreamName(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed stream name; ``symbol`` is upper case, as in the events."""

    kind: StreamKind
    symbol: str | None = None
    interval: str | None = None


def kline_stream(symbol: str, interval: str) -> str:
    """``<symbol>@kline_<interval>``, symbol lower case (§2.1, §2.3)."""
    return f"{symbol.lower()}@kline_{check_interval(interval)}"


def mini_ticker_stream(symbol: str) -> str:
    """``<symbol>@miniTicker`` (§2.4)."""
    return f"{symbol.lower()}@miniTicker"


def parse_stream_name(name: str) -> StreamName | None:
    """What a stream name denotes, or None for a stream botfleet does not handle.

    The ``@+08:00`` kline variant (§2.1) is not handled.
    """
    if name == SERVER_SHUTDOWN_STREAM:
        return StreamName(kind="serverShutdown")
    if name == ALL_MINI_TICKERS_STREAM:
        return StreamName(kind="miniTickerArr")
    symbol, sep, rest = name.partition("@")
    if not sep or not symbol:
        return None
    if rest == "miniTicker":
        return StreamName(kind="miniTicker", symbol=symbol.upper())
    if rest.startswith("kline_"):
        interval = rest.removeprefix("kline_")
        try:
            check_interval(interval)
        except ValueError:
            return None
        return StreamName(kind="kline", symbol=symbol.upper(), interval=interval)
    return None


def raw_stream_url(base: str, stream: str) -> str:
    """``<base>/ws/<stream>``: frames arrive unwrapped (§1)."""
    return f"{base.rstrip('/')}/ws/{stream}"


def combined_stream_url(base: str, streams: Sequence[str]) -> str:
    """``<base>/stream?streams=a/b/c``: frames arrive as ``{"stream":..,"data":..}`` (§1)."""
    if not streams:
        raise ValueError("a combined stream URL needs at least one stream")
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise ValueError(
            f"{len(streams)} streams > {MAX_STREAMS_PER_CONNECTION} allowed per connection"
        )
    return f"{base.rstrip('/')}/stream?streams={'/'.join(streams)}"


_request_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(WsRequest)


def subscribe_request(streams: Iterable[str], request_id: int) -> bytes:
    """``{"method":"SUBSCRIBE","params":[...],"id":N}`` (§2.2)."""
    return _request_encoder.encode(
        WsRequest(method="SUBSCRIBE", params=list(streams), id=request_id)
    )


def unsubscribe_request(streams: Iterable[str], request_id: int) -> bytes:
    """``{"method":"UNSUBSCRIBE","params":[...],"id":N}`` (§2.2)."""
    return _request_encoder.encode(
        WsRequest(method="UNSUBSCRIBE", params=list(streams), id=request_id)
    )


def decode_request(raw: bytes | str) -> WsRequest:
    """A control request as received by the simulator (raises ``msgspec`` errors)."""
    return _request_decoder.decode(raw)
