"""The WebSocket API user data stream (reference §3.14): the live gateway's fast path
for following resting orders and keeping ``balances:live`` current.

It connects to the WS API, subscribes with ``userDataStream.subscribe.signature``
(signed params from :class:`ExchangeClient`, so signing stays in one module), and then:
an ``executionReport`` for one of our client order ids wakes the follower, which asks
the exchange (REST, by client order id) and completes the order -- the event is a
wake-up, the REST answer the truth; ``outboundAccountPosition`` updates the balances.
It reconnects with capped, jittered backoff and resubscribes after
``eventStreamTerminated``. While it is down, REST polling alone follows the orders.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from services.gateway.exchange import ExchangeClient
from shared.binance.backoff import backoff_delays
from shared.logging import get_logger

log = get_logger(__name__)


class _Event(msgspec.Struct, frozen=True):
    """The fields of any user-data event this module reads (others are ignored)."""

    e: str = ""
    c: str = ""  # client order id (a cancel's own id for cancels)
    C: str = ""  # original client order id of a canceled order
    X: str = ""  # order status
    B: list[dict[str, str]] = msgspec.field(default_factory=list)  # balances (a, f, l)


class _Frame(msgspec.Struct, frozen=True):
    id: Any = None
    status: int | None = None
    result: Any = None
    error: Any = None
    subscriptionId: int | None = None
    event: _Event | None = None


_decoder = msgspec.json.Decoder(_Frame)


class UserStream:
    def __init__(self, url: str, client: ExchangeClient, redis: Any, balances_key: str) -> None:
        self.url = url
        self.client = client
        self.redis = redis
        self.balances_key = balances_key
        self.wake = asyncio.Event()
        self.connected = False
        self.events = 0
        self.last_error = ""

    async def run(self) -> None:
        delays = backoff_delays(0.5, 30.0, random.Random())
        while True:
            try:
                await self._session()
                delays = backoff_delays(0.5, 30.0, random.Random())
            except (OSError, WebSocketException, TimeoutError, SubscribeRefused) as exc:
                self.last_error = str(exc)
                log.warning("user_stream.down", error=str(exc))
            finally:
                self.connected = False
            await asyncio.sleep(next(delays))

    async def _session(self) -> None:
        async with connect(
            self.url,
            open_timeout=5,
            close_timeout=2,
            ping_interval=20,
            ping_timeout=20,
            max_size=2**22,
        ) as ws:
            request = {
                "id": "subscribe",
                "method": "userDataStream.subscribe.signature",
                "params": self.client.ws_api_params(),
            }
            await ws.send(msgspec.json.encode(request).decode())  # a text frame
            reply = _decoder.decode(await asyncio.wait_for(ws.recv(), 10))
            if reply.status != 200:
                raise SubscribeRefused(f"subscribe refused: {reply.status} {reply.error}")
            self.connected = True
            self.wake.set()  # catch up on anything that changed while we were away
            log.info("user_stream.subscribed")
            async for raw in ws:
                try:
                    frame = _decoder.decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("user_stream.undecodable", error=str(exc))
                    continue
                event = frame.event
                if event is None:
                    continue
                self.events += 1
                if event.e == "executionReport" and (
                    event.c.startswith("bf-") or event.C.startswith("bf-")
                ):
                    self.wake.set()
                elif event.e == "outboundAccountPosition" and event.B:
                    mapping: dict[str, str] = {}
                    for row in event.B:
                        if "a" in row:
                            mapping[f"{row['a']}:free"] = row.get("f", "0")
                            mapping[f"{row['a']}:locked"] = row.get("l", "0")
                    if mapping:
                        await self.redis.hset(self.balances_key, mapping=mapping)
                elif event.e == "eventStreamTerminated":
                    log.warning("user_stream.terminated")
                    return

    def health(self) -> dict[str, Any]:
        return {
            "user_stream": "subscribed" if self.connected else "down",
            "user_stream_events": self.events,
        }


class SubscribeRefused(Exception):
    """The WS API refused the subscription (bad key or signature, -2035...)."""
