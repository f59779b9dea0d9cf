"""A transparent WebSocket relay in front of the simulator's market streams, for the
two behaviours ``botfleet exchange-sim`` cannot produce (it is not a market: every
frame it forwards is the simulator's own):

- a ``serverShutdown`` notice after which *only the notified* connections are closed,
  some time later, as a real server going down does. The simulator's own
  ``server_shutdown`` fault closes every connection 0.2 s after the notice, including
  a replacement opened in that window, so it cannot show a rollover without a gap;
- a malformed or unexpected frame in the middle of a live feed (the simulator only
  sends well-formed frames).

Runs an aiohttp server in a thread of the test process: a client connecting to
``ws_url`` + ``/stream?streams=...`` gets an upstream connection to the same path on
the simulator; frames are pumped both ways and a close on either side closes the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import aiohttp
from aiohttp import WSMsgType, web

from tests.support.redis_server import free_port


class WsRelay:
    def __init__(self, upstream_ws_url: str) -> None:
        self.upstream = upstream_ws_url.rstrip("/")
        self.port = free_port()
        self.opened = 0  # downstream connections accepted so far
        self._clients: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def connections(self) -> int:
        return len(self._clients)

    # --- faults ---------------------------------------------------------------------------
    def inject(self, text: str) -> None:
        """Send ``text`` as one frame to every connected client."""
        self._call(self._send_all(text))

    def server_shutdown(self, close_after_s: float) -> None:
        """Notify the current clients (combined-stream form, reference §2.1) and close
        them, and only them, ``close_after_s`` later."""
        event_time = int(time.time() * 1000)
        notice = f'{{"stream":"!serverShutdown","data":{{"e":"serverShutdown","E":{event_time}}}}}'
        notified = self._call(self._notify(notice))
        asyncio.run_coroutine_threadsafe(self._close_later(notified, close_after_s), self._loop)

    # --- server ---------------------------------------------------------------------------
    def start(self) -> WsRelay:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            for ws in list(self._clients):
                await ws.close()
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/stream", self._relay)
        app.router.add_get("/ws/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _send_all(self, text: str) -> None:
        for ws in list(self._clients):
            with contextlib.suppress(ConnectionError):
                await ws.send_str(text)

    async def _notify(self, notice: str) -> list[web.WebSocketResponse]:
        notified = list(self._clients)
        for ws in notified:
            with contextlib.suppress(ConnectionError):
                await ws.send_str(notice)
        return notified

    async def _close_later(self, clients: list[web.WebSocketResponse], delay: float) -> None:
        await asyncio.sleep(delay)
        for ws in clients:
            await ws.close(code=1001, message=b"server shutdown")

    async def _relay(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        down = web.WebSocketResponse(heartbeat=None)
        await down.prepare(request)
        self.opened += 1
        self._clients.add(down)
        try:
            async with self._session.ws_connect(
                self.upstream + request.path_qs, heartbeat=None, max_msg_size=1 << 22
            ) as up:

                async def downstream() -> None:
                    async for msg in up:
                        if msg.type != WSMsgType.TEXT:
                            break
                        await down.send_str(msg.data)

                async def upstream() -> None:
                    async for msg in down:
                        if msg.type != WSMsgType.TEXT:
                            break
                        await up.send_str(msg.data)

                tasks = [asyncio.create_task(downstream()), asyncio.create_task(upstream())]
                _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._clients.discard(down)
            await down.close()
        return down
