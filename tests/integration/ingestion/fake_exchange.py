"""A small Binance-shaped market of the ingestion tests' own, run in a thread.

Stands in for ``botfleet exchange-sim`` until the simulator lands (then the
process tests switch to ``tests/support/sim.py``). It speaks the real shapes through
``shared.binance`` (combined ``/stream`` frames, SUBSCRIBE replies, ``/api/v3/klines``
rows), runs its clock ``speed`` times faster than the wall, and serves candles whose
values are a function of (symbol, open time), so REST and the stream always agree.
Faults: :meth:`drop_connections` and :meth:`drop_closes` (the next N ``x: true``
frames are not sent).
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from decimal import Decimal

import msgspec
from aiohttp import WSMsgType, web

from shared.binance.intervals import interval_ms, open_time_of
from shared.binance.parsing import candle_to_kline_event, candle_to_rest_kline, encode_payload
from shared.binance.schemas import CombinedFrame
from shared.binance.streams import parse_stream_name
from shared.messages import Candle
from tests.support.redis_server import free_port


class FakeExchange:
    def __init__(self, *, speed: float = 60.0, push_every_s: float = 0.05) -> None:
        self.speed = speed
        self.push_every_s = push_every_s
        self.port = free_port()
        self.start_ms = (int(time.time() * 1000) // 60_000) * 60_000 + 1_000
        self._wall0 = time.monotonic()
        self._drop_closes = 0
        self._clients: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._wall0) * 1000 * self.speed)

    @staticmethod
    def candle(symbol: str, interval: str, open_time: int, *, closed: bool) -> Candle:
        h = zlib.crc32(f"{symbol}{open_time}".encode())
        base = Decimal(100 + h % 1000) / 10
        return Candle(symbol=symbol, interval=interval, open_time=open_time,
                      close_time=open_time + interval_ms(interval) - 1, open=base,
                      high=base + 1, low=base - 1, close=base + Decimal(h % 7) / 10,
                      volume=Decimal(h % 50), quote_volume=Decimal(0), trades=h % 9,
                      closed=closed)  # fmt: skip

    # --- faults -------------------------------------------------------------------------
    def drop_connections(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(5)

    def drop_closes(self, n: int) -> None:
        self._drop_closes = n

    async def _close_all(self) -> None:
        for ws in list(self._clients):
            await ws.close()

    # --- server -------------------------------------------------------------------------
    def start(self) -> FakeExchange:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._close_all()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms(), "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
            "symbols": []}, headers={"X-MBX-USED-WEIGHT-1M": "20"})  # fmt: skip

    async def _klines(self, request: web.Request) -> web.Response:
        symbol, interval = request.query["symbol"], request.query["interval"]
        limit = int(request.query.get("limit", 500))
        step = interval_ms(interval)
        now = self.now_ms()
        current = open_time_of(interval, now)
        if "startTime" in request.query:
            first = open_time_of(interval, int(request.query["startTime"]) + step - 1)
        else:
            first = current - (limit - 1) * step
        rows = []
        t = first
        while t <= current and len(rows) < limit:
            rows.append(candle_to_rest_kline(self.candle(symbol, interval, t, closed=t < current)))
            t += step
        return web.Response(body=encode_payload(rows), content_type="application/json",
                            headers={"X-MBX-USED-WEIGHT-1M": "2"})  # fmt: skip

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        streams = {s for s in request.query.get("streams", "").split("/") if s}
        self._clients.add(ws)
        pusher = asyncio.create_task(self._push(ws, streams))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                body = msgspec.json.decode(msg.data)
                params = body.get("params") or []
                if body.get("method") == "SUBSCRIBE":
                    streams.update(params)
                elif body.get("method") == "UNSUBSCRIBE":
                    streams.difference_update(params)
                await ws.send_str(
                    msgspec.json.encode({"result": None, "id": body.get("id")}).decode()
                )
        finally:
            pusher.cancel()
            self._clients.discard(ws)
        return ws

    async def _push(self, ws: web.WebSocketResponse, streams: set[str]) -> None:
        last_open: dict[str, int] = {}
        while not ws.closed:
            now = self.now_ms()
            for name in list(streams):
                parsed = parse_stream_name(name)
                if parsed is None or parsed.symbol is None or parsed.interval is None:
                    continue
                current = open_time_of(parsed.interval, now)
                previous = last_open.get(name)
                frames = []
                if previous is not None and previous < current:
                    if self._drop_closes > 0:
                        self._drop_closes -= 1
                    else:
                        closed = self.candle(parsed.symbol, parsed.interval, previous, closed=True)
                        frames.append(candle_to_kline_event(closed, event_time=current))
                last_open[name] = current
                update = self.candle(parsed.symbol, parsed.interval, current, closed=False)
                frames.append(candle_to_kline_event(update, event_time=now))
                for event in frames:
                    payload = encode_payload(CombinedFrame(stream=name, data=event))
                    try:
                        await ws.send_str(payload.decode())
                    except ConnectionError:
                        return
            await asyncio.sleep(self.push_every_s)
