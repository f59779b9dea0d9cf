"""Ingestion hot path: kline frames over a WebSocket -> decode -> sequence -> Redis.

Prints (not a pass/fail test):
- events/s one ingestion process sustains into Redis at saturation,
- CPU seconds of the ingestion process per 1,000 events/s,
- p50/p99 latency from the event time ``E`` (stamped by the sender, same clock) to
  the moment Redis confirmed the pipeline holding the XADD, at 5,000 events/s.

The feed comes from a local WebSocket server of the bench's own (a separate process
speaking Binance's combined-stream format built with shared.binance.parsing), not
the exchange simulator: the bench measures ingestion, not the simulator's speed.
The ingestion side is the real MarketFeed + MarketWriter + FeedConnection against a
private redis-server. Run: ``.venv/bin/python bench/bench_ingestion.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOLS = [f"SYM{i}USDT" for i in range(50)]
INTERVAL = "1m"
M = 60_000
SATURATION_EVENTS = 300_000
RATE_EVENTS_PER_S = 5_000
RATE_SECONDS = 8


def _server(port: int, mode: str, ready: mp.Event) -> None:  # type: ignore[valid-type]
    """The feed: every symbol's 1m kline, ``x:false`` updates and a close per minute."""
    import uvloop
    from websockets.asyncio.server import serve

    from shared.binance.parsing import candle_to_kline_event, encode_payload
    from shared.binance.schemas import CombinedFrame
    from shared.messages import Candle

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        t0 = (int(time.time() * 1000) // M) * M
        templates = []
        for symbol in SYMBOLS:
            c = Candle(
                symbol=symbol,
                interval=INTERVAL,
                open_time=t0,
                close_time=t0 + M - 1,
                open=Decimal("100.5"),
                high=Decimal("101"),
                low=Decimal("99"),
                close=Decimal("100.2222"),
                volume=Decimal("12.5"),
                closed=False,
            )
            event = candle_to_kline_event(c, event_time=1_111_111_111_111)
            frame = encode_payload(CombinedFrame(stream=f"{symbol.lower()}@kline_1m", data=event))
            templates.append(frame.decode())
        n = 0
        if mode == "saturate":
            batch = 200
            while n < SATURATION_EVENTS:
                stamp = str(int(time.time() * 1000))
                for _ in range(batch):
                    frame = templates[n % len(templates)].replace("1111111111111", stamp)
                    await ws.send(frame.replace("100.2222", f"100.{n % 10000:04d}"))
                    n += 1
                await asyncio.sleep(0)
        else:
            start = time.perf_counter()
            total = RATE_EVENTS_PER_S * RATE_SECONDS
            while n < total:
                due = int((time.perf_counter() - start) * RATE_EVENTS_PER_S)
                while n < min(due, total):
                    stamp = str(int(time.time() * 1000))
                    frame = templates[n % len(templates)].replace("1111111111111", stamp)
                    await ws.send(frame.replace("100.2222", f"100.{n % 10000:04d}"))
                    n += 1
                await asyncio.sleep(0.001)
        await asyncio.sleep(3600)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
            ready.set()
            await asyncio.Future()

    uvloop.run(main())


async def _ingest(redis_url: str, port: int, mode: str) -> dict[str, float]:
    from services.ingestion.connection import ConnectionOptions, FeedConnection
    from services.ingestion.feed import MarketFeed
    from services.ingestion.writer import MarketWriter
    from shared.binance.streams import kline_stream
    from shared.redis import connect

    redis = await connect(redis_url)
    await redis.flushall()
    latencies: list[float] = []

    def flushed(times: list[int], done_at: float) -> None:
        if mode == "rate":
            done_ms = done_at * 1000
            latencies.extend(done_ms - t for t in times)

    writer = MarketWriter(redis, on_flushed=flushed)
    await writer.load_scripts()
    feed = MarketFeed(writer)
    t0 = (int(time.time() * 1000) // M) * M
    for symbol in SYMBOLS:
        feed.add_stream(symbol, INTERVAL, t0 - M)
    options = ConnectionOptions(ws_url=f"ws://127.0.0.1:{port}", stale_after_s=30)
    conn = FeedConnection(0, options, feed, lambda reason, raw: None)
    conn.want({kline_stream(s, INTERVAL) for s in SYMBOLS})
    writer_task = asyncio.create_task(writer.run())
    conn_task = asyncio.create_task(conn.run())
    target = SATURATION_EVENTS if mode == "saturate" else RATE_EVENTS_PER_S * RATE_SECONDS
    while feed.events == 0:  # noqa: ASYNC110 - polling a counter of the code under test
        await asyncio.sleep(0.001)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while feed.events < target:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await writer.drained()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    conn_task.cancel()
    writer_task.cancel()
    await asyncio.gather(conn_task, writer_task, return_exceptions=True)
    await conn.close()
    ticks = sum([await redis.xlen(f"stream:ticks:{{{s}}}") for s in SYMBOLS[:1]])
    await redis.aclose()
    rate = feed.events / wall
    out = {
        "events": feed.events,
        "wall_s": wall,
        "cpu_s": cpu,
        "events_per_s": rate,
        "cpu_per_1000_eps": cpu / wall / (rate / 1000),
        "ticks_in_first_stream": ticks,
    }
    if latencies:
        latencies.sort()
        out["p50_ms"] = latencies[len(latencies) // 2]
        out["p99_ms"] = latencies[int(len(latencies) * 0.99)]
    return out


def main() -> None:
    import uvloop

    from tests.support.redis_server import RedisServer, free_port

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            print(
                "feed: a local WebSocket server of the bench's own (not the simulator), "
                f"{len(SYMBOLS)} symbols x 1m klines, combined-stream frames"
            )
            for mode in ("saturate", "rate", "rate", "rate"):
                port = free_port()
                ready = mp.Event()
                proc = mp.Process(target=_server, args=(port, mode, ready), daemon=True)
                proc.start()
                ready.wait(10)
                result = uvloop.run(_ingest(server.url, port, mode))
                proc.kill()
                proc.join()
                if mode == "saturate":
                    print(
                        f"saturation: {result['events_per_s']:,.0f} kline events/s into Redis "
                        f"({result['events']:,} events in {result['wall_s']:.2f}s)"
                    )
                    print(
                        f"CPU: {result['cpu_per_1000_eps']:.3f} core-seconds per second "
                        f"per 1,000 events/s ({result['cpu_s']:.2f}s CPU)"
                    )
                else:
                    print(
                        f"at {RATE_EVENTS_PER_S:,} events/s: {result['events_per_s']:,.0f} events/s, "
                        f"latency E -> XADD confirmed p50 {result['p50_ms']:.2f} ms, "
                        f"p99 {result['p99_ms']:.2f} ms; "
                        f"CPU {result['cpu_per_1000_eps']:.3f} per 1,000 events/s "
                        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
                    )
        finally:
            server.stop()
    print(f"pid {os.getpid()} done")


if __name__ == "__main__":
    main()
