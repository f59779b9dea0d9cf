"""How many kline events per second the exchange simulator pushes to WebSocket clients.

Starts ``botfleet exchange-sim`` as a real process at a high ``--speed`` (so the
market produces more kline updates than any client can take), subscribes to 40
kline streams (4 symbols x 10 intervals) on one connection, then on eight, and
prints the events received per second: the median of ``--runs`` short windows of
``--seconds`` each (with their range), total and per connection, and the
simulator's CPU time per event. Later benchmarks use the figure as the ceiling of
what the simulator can feed them.

Then, on a second simulator at speed 1 with limits out of the way: REST requests/s
for ``GET /api/v3/ticker/24hr`` (one symbol) and ``GET /api/v3/depth`` (limit 100)
with ``--clients`` keep-alive clients in one process, and WebSocket-API
``order.place`` round trips (MARKET orders, HMAC-signed, one after the other on one
connection; BUY and SELL alternate), as the median of ``--runs`` windows.

Run: ``make bench`` or
``.venv/bin/python bench/bench_exchange_sim.py [--runs 7] [--seconds 1] [--clients 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.sim import SIM_API_KEY, SIM_API_SECRET, start_sim

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w")
WARMUP_S = 1.0  # after every reader is connected, before the first window


async def _read(
    url: str, start_at: Any, seconds: float, runs: int, ready: mp.Queue[Any]
) -> list[int]:
    """Connect, say so on ``ready``, then count TEXT frames received in each of
    ``runs`` windows of ``seconds`` from the wall-clock time the parent puts in
    ``start_at`` (``time.time()``, shared by every reader process) once every reader
    is connected.

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
    ready.put(None)
    counts = [0] * runs
    start = end = float("inf")
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
        now = time.time()
        if start_at.value and start == float("inf"):
            start = start_at.value
            end = start + seconds * runs
        if now >= end:
            writer.close()
            return counts
        if now >= start:
            counts[int((now - start) // seconds)] += frames


def _reader_process(
    url: str, start_at: Any, seconds: float, runs: int, ready: mp.Queue[Any], out: mp.Queue[Any]
) -> None:
    out.put(asyncio.run(_read(url, start_at, seconds, runs, ready)))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    base: str, pid: int, connections: int, seconds: float, runs: int
) -> tuple[list[list[int]], float]:
    """One client process per connection, so the clients are not the bottleneck.
    Returns each connection's per-window counts and the simulator's CPU seconds
    over the windows."""
    streams = "/".join(f"{s.lower()}@kline_{i}" for s in SYMBOLS for i in INTERVALS)
    url = f"{base}/stream?streams={streams}"
    ctx = mp.get_context("spawn")
    out: mp.Queue[Any] = ctx.Queue()
    ready: mp.Queue[Any] = ctx.Queue()
    start_at = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(target=_reader_process, args=(url, start_at, seconds, runs, ready, out))
        for _ in range(connections)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    start = start_at.value = time.time() + WARMUP_S
    time.sleep(max(0.0, start - time.time()))
    cpu0 = _cpu_seconds(pid)
    time.sleep(max(0.0, start + seconds * runs - time.time()))
    cpu = _cpu_seconds(pid) - cpu0
    counts = [out.get(timeout=seconds * runs + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return counts, cpu


async def _rest_rate(base: str, path: str, clients: int, seconds: float, runs: int) -> list[float]:
    """Requests/s per window with ``clients`` concurrent keep-alive clients (aiohttp:
    the lightest Python client, so that the figure is the simulator's, not httpx's)."""
    import aiohttp

    counts = [0] * runs
    start = time.monotonic() + 0.5  # warm-up: connections open, caches filled

    async def client(http: aiohttp.ClientSession) -> None:
        while (now := time.monotonic()) < start + seconds * runs:
            async with http.get(base + path) as resp:
                resp.raise_for_status()
                await resp.read()
            if now >= start:
                counts[min(runs - 1, int((now - start) / seconds))] += 1

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return [c / seconds for c in counts]


async def _ws_api_round_trips(url: str, seconds: float, runs: int) -> tuple[list[float], float]:
    """order.place round trips per window and their median latency (ms)."""
    import json

    import websockets

    from shared.binance.signing import HmacSigner, ws_api_signature_payload

    signer = HmacSigner(SIM_API_SECRET)
    counts = [0] * runs
    latencies: list[float] = []
    async with websockets.connect(url, max_size=None) as ws:
        start = time.monotonic() + 0.5
        n = 0
        while (now := time.monotonic()) < start + seconds * runs:
            params: dict[str, Any] = {
                "apiKey": SIM_API_KEY, "symbol": "BTCUSDT", "side": ("BUY", "SELL")[n % 2],
                "type": "MARKET", "quantity": "0.00010", "newOrderRespType": "ACK",
                "timestamp": int(time.time() * 1000),
            }  # fmt: skip
            params["signature"] = signer.sign(ws_api_signature_payload(params))
            sent = time.perf_counter()
            await ws.send(json.dumps({"id": n, "method": "order.place", "params": params}))
            reply = json.loads(await ws.recv())
            if reply.get("status") != 200:
                raise RuntimeError(f"order.place refused: {reply}")
            n += 1
            if now >= start:
                latencies.append((time.perf_counter() - sent) * 1000)
                counts[min(runs - 1, int((now - start) / seconds))] += 1
    return [c / seconds for c in counts], statistics.median(latencies)


def requests_section(clients: int, seconds: float, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = start_sim(
            Path(tmp), speed=1.0, symbols=SYMBOLS,
            extra_args=["--weight-limit", str(10**9), "--orders-per-10s", str(10**9),
                        "--orders-per-day", str(10**9), "--balances", "USDT=100000000,BTC=1000"],
        )  # fmt: skip
        try:
            print(
                f"exchange-sim requests: {clients} keep-alive aiohttp clients in one process "
                f"(REST), one websockets connection (WS API); median of {runs} windows of "
                f"{seconds:g} s (range); load average {os.getloadavg()[0]:.1f}"
            )
            for label, path in (
                ("GET /api/v3/ticker/24hr?symbol=BTCUSDT", "/api/v3/ticker/24hr?symbol=BTCUSDT"),
                ("GET /api/v3/depth?symbol=BTCUSDT", "/api/v3/depth?symbol=BTCUSDT&limit=100"),
            ):
                cpu0 = _cpu_seconds(sim.process.pid)
                rates = asyncio.run(_rest_rate(sim.rest_url, path, clients, seconds, runs))
                cpu = _cpu_seconds(sim.process.pid) - cpu0
                served = sum(rates) * seconds
                print(
                    f"  {label}: {statistics.median(rates):,.0f} requests/s "
                    f"({min(rates):,.0f} - {max(rates):,.0f}); simulator CPU "
                    f"{cpu * 1000 / max(served, 1):.2f} ms per request"
                )
            rates, latency = asyncio.run(_ws_api_round_trips(sim.ws_api_url, seconds, runs))
            print(
                f"  WS API order.place (MARKET, ACK): {statistics.median(rates):,.0f} round "
                f"trips/s ({min(rates):,.0f} - {max(rates):,.0f}), median {latency:.2f} ms"
            )
        finally:
            sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="measurement windows")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each window")
    parser.add_argument("--speed", type=float, default=3000.0)
    parser.add_argument("--clients", type=int, default=8, help="concurrent REST clients")
    parser.add_argument(
        "--only", choices=("fanout", "requests"), default=None, help="run one section"
    )
    args = parser.parse_args()
    if args.only != "fanout":
        requests_section(args.clients, args.seconds, args.runs)
    if args.only == "requests":
        return
    demand = len(SYMBOLS) * len(INTERVALS) * args.speed
    with tempfile.TemporaryDirectory() as tmp:
        sim = start_sim(Path(tmp), speed=args.speed, symbols=SYMBOLS)
        try:
            print(
                f"exchange-sim kline fan-out: {len(SYMBOLS) * len(INTERVALS)} kline streams per "
                f"connection, --speed {args.speed:g} (up to {demand:,.0f} updates/s asked per "
                f"connection); one reader process per connection; median of {args.runs} "
                f"windows of {args.seconds:g} s (range); load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )
            for n in (1, 8):
                counts, cpu = measure(sim.ws_url, sim.process.pid, n, args.seconds, args.runs)
                totals = [sum(c[i] for c in counts) / args.seconds for i in range(args.runs)]
                slowest = [min(c[i] for c in counts) / args.seconds for i in range(args.runs)]
                events = sum(map(sum, counts))
                capped = statistics.median(slowest) >= 0.95 * demand
                print(
                    f"  {n} connection(s): {statistics.median(totals):,.0f} events/s total "
                    f"({min(totals):,.0f} - {max(totals):,.0f}), "
                    f"{statistics.median(totals) / n:,.0f} per connection "
                    f"(slowest connection {statistics.median(slowest):,.0f}); simulator CPU "
                    f"{cpu:.1f} s -> {events / max(cpu, 1e-9):,.0f} events per CPU-second"
                    + (
                        " [all the market produces: raise --speed for the ceiling]"
                        if capped
                        else ""
                    )
                )
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
