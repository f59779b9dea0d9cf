"""WebSocket connections and the protocol of their messages (no sockets here).

Owns: :class:`Conn` (one client: an outbox of pre-serialised frames, its writer, and
Binance's keep-alive: a ping every 20 s, a disconnect when no pong came within a
minute, reference §2.1), the live control messages of market streams (§2.2: SUBSCRIBE,
UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET/GET_PROPERTY with Binance's replies and error
objects, 1024 streams per connection) and the WebSocket API calls the simulator
serves (§3.14: ping, time, session.logon, userDataStream.subscribe[.signature],
userDataStream.unsubscribe, session.subscriptions).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from aiohttp import WSMsgType, web

from services.exchange_sim.apierror import BAD_SIGNATURE, REJECTED_KEY, ApiError, mandatory
from services.exchange_sim.exchange import Exchange
from services.exchange_sim.requests import ApiKey, check_timestamp
from services.exchange_sim.wsapi import METHODS
from shared.binance.signing import verify_ed25519, verify_hmac, ws_api_signature_payload
from shared.binance.streams import MAX_STREAMS_PER_CONNECTION
from shared.logging import get_logger

log = get_logger(__name__)
_json = msgspec.json.Encoder()
# A connection with more queued messages than this gets only closed candles (and no
# open-candle updates) until it catches up; past the hard limit it is dropped as too
# slow, as Binance drops consumers that cannot keep up.
OUTBOX_BACKLOG = 5_000
OUTBOX_LIMIT = 200_000


class RawTransport(Protocol):
    """What batched sends need of a transport (asyncio's and uvloop's have it)."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


_BATCH_BYTES = 256 * 1024
_HIGH_WATER = 1024 * 1024


def text_frame(payload: bytes) -> bytes:
    """``payload`` as an RFC 6455 §5.2 unmasked, final text frame (server to client):
    built once per event and shared by every connection that gets it."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big") + payload
    return b"\x81\x7f" + length.to_bytes(8, "big") + payload


def _payload_of(frame: bytes) -> bytes:
    """The payload of a frame built by :func:`text_frame`."""
    length = frame[1] & 0x7F
    return frame[2 if length < 126 else 4 if length == 126 else 10 :]


def wall_ms() -> int:
    return int(time.time() * 1000)


class Conn:
    """One WebSocket client: an outbox of ready frames (header and payload, shared
    between connections) and its writer task."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        kind: str,
        combined: bool = False,
        transport: RawTransport | None = None,
    ) -> None:
        self.ws = ws
        # With the raw transport (uncompressed connections), frames are written in
        # batches; without it, one aiohttp send per frame.
        self.transport = transport
        self.kind = kind  # "market" | "ws-api" | "listen-key"
        self.combined = combined
        self.streams: set[str] = set()
        self.outbox: deque[bytes] = deque()  # whole frames
        self.queued_bytes = 0
        self._wake = asyncio.Event()
        self.sent = 0
        self.skipped = 0  # open-candle updates not queued while backlogged
        self.user_subs: dict[int, str] = {}  # subscription id -> account (ws-api)
        self.listen_account: str | None = None
        self.logged_on: ApiKey | None = None
        self.last_pong = time.monotonic()
        # The half_open fault: the socket stays open but this side sends nothing more
        # (no frame, no ping, no pong) and closes nothing.
        self.half_open = False
        self.ip = "?"  # the client's address (WS-API weight is per IP, shared with REST)
        self.return_rate_limits = True  # WS API: ?returnRateLimits=false turns them off

    async def keepalive(self, interval: float) -> None:
        """Ping every ``interval`` seconds; close a client whose last pong is older
        than three intervals (Binance: every 20 s, pong within a minute, §2.1)."""
        while not self.ws.closed:
            await asyncio.sleep(interval)
            if self.half_open:
                continue
            if time.monotonic() - self.last_pong > 3 * interval:
                log.info("ws.no_pong", kind=self.kind, timeout_s=3 * interval)
                await self.ws.close(code=1008, message=b"Pong timeout")
                return
            await self.ws.ping(str(wall_ms()).encode())

    def push(self, data: bytes) -> None:
        """Queue one message (a payload; it is framed here)."""
        if self.half_open:
            return
        frame = text_frame(data)
        self.outbox.append(frame)
        self.queued_bytes += len(frame)
        self._wake.set()

    def push_frames(self, frames: list[bytes], size: int) -> None:
        """Queue ready frames (``size``: their total length), one wake-up for all."""
        if self.half_open:
            return
        self.outbox.extend(frames)
        self.queued_bytes += size
        self._wake.set()

    async def writer(self) -> None:
        ws = self.ws
        while not ws.closed:
            await self._wake.wait()
            self._wake.clear()
            if self.half_open:
                self.outbox.clear()
                self.queued_bytes = 0
                continue
            if len(self.outbox) > OUTBOX_LIMIT:
                log.warning("ws.slow_consumer_dropped", queued=len(self.outbox))
                await ws.close(code=1008, message=b"too slow")
                return
            transport = self.transport
            if transport is None:
                while self.outbox and not ws.closed:
                    frame = self.outbox.popleft()
                    self.queued_bytes -= len(frame)
                    await ws.send_frame(_payload_of(frame), WSMsgType.TEXT)
                    self.sent += 1
                continue
            # Batched: many whole frames per write; frames never interleave with the
            # pings and closes aiohttp writes, since each write holds whole frames.
            outbox = self.outbox
            while outbox and not ws.closed and not transport.is_closing():
                if self.queued_bytes <= _BATCH_BYTES:  # everything queued, one write
                    count = len(outbox)
                    data = b"".join(outbox)
                    outbox.clear()
                else:
                    batch = []
                    size = 0
                    while outbox and size < _BATCH_BYTES:
                        frame = outbox.popleft()
                        batch.append(frame)
                        size += len(frame)
                    count = len(batch)
                    data = b"".join(batch)
                self.queued_bytes -= len(data)
                transport.write(data)
                self.sent += count
                # The client reads slower than we write: wait for its buffer to drain
                # (the raw transport has no drain event without its protocol: poll).
                while (  # noqa: ASYNC110
                    transport.get_write_buffer_size() > _HIGH_WATER and not transport.is_closing()
                ):
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0)  # let the engine and other connections run


class WsProtocol:
    """Replies to control messages and WS-API calls; subscriptions go through the
    callbacks so the server keeps its stream registry."""

    def __init__(
        self,
        ex: Exchange,
        subscribe: Callable[[Conn, str], None],
        unsubscribe: Callable[[Conn, str], None],
    ) -> None:
        self.ex = ex
        self.subscribe = subscribe
        self.unsubscribe = unsubscribe
        self._sub_ids = 0

    def control(self, conn: Conn, text: str) -> bytes:
        """A live control message (§2.2) and its reply."""
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return _json.encode(
                {
                    "error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"},
                    "id": None,
                }
            )
        if not isinstance(msg, dict):
            return _json.encode(
                {
                    "error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"},
                    "id": None,
                }
            )
        req_id = msg.get("id")
        if (req_id is not None and not isinstance(req_id, (int, str))) or isinstance(req_id, bool):
            return _json.encode(
                {
                    "error": {
                        "code": 2,
                        "msg": "Invalid request: request ID must be an unsigned integer",
                    },
                    "id": None,
                }
            )
        method = msg.get("method")
        params = msg.get("params", [])
        if method is None:
            return _json.encode(
                {
                    "error": {"code": 2, "msg": "Invalid request: missing field `method`"},
                    "id": req_id,
                }
            )
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _json.encode(
                    {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": req_id}
                )
            if method == "SUBSCRIBE":
                if any(not self.ex.feed.valid(p) for p in params):
                    return _json.encode(
                        {
                            "error": {"code": 2, "msg": "Invalid request: invalid stream"},
                            "id": req_id,
                        }
                    )
                if len(conn.streams | set(params)) > MAX_STREAMS_PER_CONNECTION:
                    return _json.encode(
                        {
                            "error": {"code": 2, "msg": "Invalid request: too many streams"},
                            "id": req_id,
                        }
                    )
                for p in params:
                    self.subscribe(conn, p)
            else:
                for p in params:
                    self.unsubscribe(conn, p)
            return _json.encode({"result": None, "id": req_id})
        if method == "LIST_SUBSCRIPTIONS":
            return _json.encode({"result": sorted(conn.streams), "id": req_id})
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or params[0] != "combined":
                return _json.encode({"error": {"code": 0, "msg": "Unknown property"}, "id": req_id})
            if method == "GET_PROPERTY":
                return _json.encode({"result": conn.combined, "id": req_id})
            if len(params) != 2 or not isinstance(params[1], bool):
                return _json.encode(
                    {
                        "error": {"code": 1, "msg": "Invalid value type: expected Boolean"},
                        "id": req_id,
                    }
                )
            conn.combined = params[1]
            return _json.encode({"result": None, "id": req_id})
        return _json.encode(
            {
                "error": {
                    "code": 2,
                    "msg": f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
                },
                "id": req_id,
            }
        )

    def verify(self, params: dict[str, Any]) -> ApiKey:
        """A signed WS-API request (§4: params sorted, raw, not percent-encoded)."""
        api_key = params.get("apiKey")
        if not isinstance(api_key, str) or not api_key:
            raise mandatory("apiKey")
        key = self.ex.active_keys().get(api_key)
        if key is None:
            raise REJECTED_KEY
        signature = params.get("signature")
        if not isinstance(signature, str) or not signature:
            raise mandatory("signature")
        timestamp = params.get("timestamp")
        if not isinstance(timestamp, int):
            raise mandatory("timestamp")
        payload = ws_api_signature_payload(params)
        if key.public_key is not None:
            ok = verify_ed25519(key.public_key, payload, signature)
        else:
            assert key.secret is not None
            ok = verify_hmac(key.secret, payload, signature)
        if not ok:
            raise BAD_SIGNATURE
        recv = params.get("recvWindow", 5000)
        check_timestamp(timestamp, int(recv), self.ex.now_ms(), self.ex.wall_fallback_ms())
        return key

    def _new_sub(self, conn: Conn, account: str) -> int:
        sub_id = self._sub_ids
        self._sub_ids += 1
        conn.user_subs[sub_id] = account
        return sub_id

    def ws_api(self, conn: Conn, text: str) -> bytes:
        try:
            msg = msgspec.json.decode(text)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except (msgspec.DecodeError, ValueError):
            return _json.encode(
                {
                    "id": None,
                    "status": 400,
                    "error": {
                        "code": -1100,
                        "msg": "Illegal characters found in parameter 'request'.",
                    },
                }
            )
        req_id = msg.get("id")
        method = msg.get("method")
        params = msg.get("params") or {}
        try:
            result: Any
            if method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": self.ex.now_ms()}
            elif method == "userDataStream.subscribe.signature":
                key = self.verify(params)
                if key.account in conn.user_subs.values():
                    raise ApiError(-2035, "User Data Stream subscription already active.")
                result = {"subscriptionId": self._new_sub(conn, key.account)}
            elif method == "session.logon":
                key = self.verify(params)
                if key.public_key is None:
                    raise ApiError(-1022, "Signature for this request is not valid.")
                conn.logged_on = key
                now = self.ex.now_ms()
                result = {
                    "apiKey": key.key,
                    "authorizedSince": now,
                    "connectedSince": now,
                    "returnRateLimits": False,
                    "serverTime": now,
                    "userDataStream": False,
                }
            elif method == "userDataStream.subscribe":
                if conn.logged_on is None:
                    raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
                if conn.logged_on.account in conn.user_subs.values():
                    raise ApiError(-2035, "User Data Stream subscription already active.")
                result = {"subscriptionId": self._new_sub(conn, conn.logged_on.account)}
            elif method == "userDataStream.unsubscribe":
                sub = params.get("subscriptionId")
                if sub is None:
                    conn.user_subs.clear()
                elif conn.user_subs.pop(sub, None) is None:
                    raise ApiError(-2036, "User Data Stream subscription not active.")
                result = {}
            elif method == "session.subscriptions":
                result = [{"subscriptionId": s} for s in sorted(conn.user_subs)]
            else:
                raise ApiError(
                    -1100,
                    "Illegal characters found in parameter 'method'; legal range is 'ping, time, "
                    "session.logon, userDataStream.subscribe, userDataStream.subscribe.signature, "
                    "userDataStream.unsubscribe, session.subscriptions, "
                    + ", ".join(METHODS)
                    + "'.",
                )
        except ApiError as exc:
            return _json.encode(
                {"id": req_id, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}}
            )
        return _json.encode({"id": req_id, "status": 200, "result": result})
