"""How many kline events per second the exchange simulator pushes to WebSocket clients.

Starts ``botfleet exchange-sim`` as a real process at a high ``--speed`` (so the
market produces more kline updates than any client can take), subscribes to
``--streams`` kline streams on one connection, then on eight, and prints the events
received per second (total and per connection). Later benchmarks use the figure as
the ceiling of what the simulator can feed them. Run: ``make bench`` or
``.venv/bin/python bench/bench_exchange_sim.py [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.sim import start_sim

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w")


async def _read(url: str, seconds: float, warmup: float) -> int:
    """Count TEXT frames received during ``seconds`` after ``warmup``.

    A minimal WebSocket reader (handshake, then frame headers only) so that the
    figure is what the simulator pushes, not how fast a client library parses.
    """
    rest = url.removeprefix("ws://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 22)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"handshake failed: {head[:200]!r}")
    count = 0
    start = time.monotonic() + warmup
    end = start + seconds
    buf = b""
    pos = 0
    while True:
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed by the simulator")
        buf = buf[pos:] + chunk
        pos = 0
        frames = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if n - pos < hdr + length:
                break
            if b0 & 0x0F == 1:
                frames += 1
            pos += hdr + length
        now = time.monotonic()
        if now >= end:
            writer.close()
            return count
        if now >= start:
            count += frames


def _reader_process(url: str, seconds: float, warmup: float, out: mp.Queue[int]) -> None:
    out.put(asyncio.run(_read(url, seconds, warmup)))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(base: str, connections: int, seconds: float) -> list[int]:
    """One client process per connection, so the clients are not the bottleneck."""
    streams = "/".join(f"{s.lower()}@kline_{i}" for s in SYMBOLS for i in INTERVALS)
    url = f"{base}/stream?streams={streams}"
    ctx = mp.get_context("spawn")
    out: mp.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=_reader_process, args=(url, seconds, 2.0, out))
        for _ in range(connections)
    ]
    for p in procs:
        p.start()
    counts = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=3000.0)
    args = parser.parse_args()
    demand = len(SYMBOLS) * len(INTERVALS) * args.speed
    with tempfile.TemporaryDirectory() as tmp:
        sim = start_sim(Path(tmp), speed=args.speed, symbols=SYMBOLS)
        try:
            print(
                f"exchange-sim kline fan-out: {len(SYMBOLS) * len(INTERVALS)} kline streams per "
                f"connection, --speed {args.speed:g} (up to {demand:,.0f} updates/s asked per "
                "connection); one reader process per connection, 2 s warm-up"
            )
            for n in (1, 8):
                cpu0 = _cpu_seconds(sim.process.pid)
                counts = measure(sim.ws_url, n, args.seconds)
                cpu = _cpu_seconds(sim.process.pid) - cpu0
                total = sum(counts) / args.seconds
                print(
                    f"  {n} connection(s): {total:,.0f} events/s total, "
                    f"{total / n:,.0f} events/s per connection "
                    f"(slowest {min(counts) / args.seconds:,.0f}); simulator CPU "
                    f"{cpu:.1f} s -> {sum(counts) / max(cpu, 1e-9):,.0f} events per CPU-second"
                )
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
