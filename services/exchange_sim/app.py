"""``botfleet exchange-sim``: build the exchange from its options and serve it.

Reads top to bottom: options -> markets (synthetic or replay) -> keys and accounts ->
exchange -> server; then the engine loop runs until the stop signal.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from services.exchange_sim.candles import SymbolMarket
from services.exchange_sim.clock import ExchangeClock
from services.exchange_sim.exchange import Exchange
from services.exchange_sim.faults import FaultConfig, Faults
from services.exchange_sim.limits import Limits
from services.exchange_sim.market import PathSource, ReplaySource, SyntheticSource, spec_for
from services.exchange_sim.replay import load_replay
from services.exchange_sim.requests import ApiKey
from services.exchange_sim.server import SimServer
from shared.binance.endpoints import SIM_DEFAULT_PORT
from shared.binance.signing import load_ed25519_public_key
from shared.logging import get_logger
from shared.service import cancel_tasks

log = get_logger(__name__)
ACCOUNT = "main"
DAY_MS = 86_400_000


@dataclass
class SimOptions:
    host: str = "127.0.0.1"
    port: int = SIM_DEFAULT_PORT
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    speed: float = 1.0
    seed: int = 7
    api_key: str = ""
    api_secret: str = ""
    ed25519_public_key: str = ""  # path or PEM text
    ed25519_api_key: str = ""
    extra_keys: list[tuple[str, str]] = field(default_factory=list)  # more HMAC pairs
    replay: Path | None = None
    replayed: dict[str, ReplaySource] | None = None  # ``replay`` already loaded (the CLI checks it)
    balances: dict[str, Decimal] = field(
        default_factory=lambda: {"USDT": Decimal(100000), "BTC": Decimal(1), "ETH": Decimal(10)}
    )
    start_ms: int | None = None
    history_days: int = 1000
    weight_limit: int = 6000
    orders_per_10s: int = 100
    orders_per_day: int = 200_000
    ban_after: int = 10
    kline_update_ms: int = 1000
    ws_ping_interval: float = 20.0
    shutdown_grace_s: float = 3.0
    legacy_listen_key: bool = False  # serve the retired listenKey endpoints
    faults: FaultConfig = field(default_factory=FaultConfig)


def parse_balances(text: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        asset, sep, amount = part.partition("=")
        if not sep:
            raise ValueError(f"balance {part!r} is not ASSET=AMOUNT")
        out[asset.strip().upper()] = Decimal(amount)
    return out


def read_public_key(value: str) -> bytes:
    if "BEGIN PUBLIC KEY" in value:
        return value.encode()
    return Path(value).read_bytes()


def build_exchange(opts: SimOptions) -> Exchange:
    sources: dict[str, PathSource]
    if opts.replay is not None:
        replayed = opts.replayed or load_replay(opts.replay, opts.symbols or None)
        sources = dict(replayed)
        first = min(s.first_second for s in replayed.values())
        last = max(s.last_second for s in replayed.values())
        # Default start: after up to 1000 candles' worth of history, within the file.
        start_ms = opts.start_ms or (first + min((last - first) // 2, 1000 * 60)) * 1000
    else:
        sources = {s: SyntheticSource(spec_for(s), opts.seed) for s in opts.symbols}
        start_ms = opts.start_ms or int(time.time() * 1000)
    # The clock starts now, with start_ms read just above: building the markets below
    # takes a while, and a clock started after it would run behind the wall clock (at
    # --speed 1 the exchange's minutes must be the real minutes clients budget against).
    clock = ExchangeClock(start_ms, opts.speed)
    clock.offset_ms = opts.faults.clock_offset_ms
    history_start = (start_ms - opts.history_days * DAY_MS) // 1000
    markets = {
        s: SymbolMarket(src, first_second=history_start if opts.replay is None else None)
        for s, src in sources.items()
    }
    keys: dict[str, ApiKey] = {}
    if opts.api_key:
        keys[opts.api_key] = ApiKey(opts.api_key, ACCOUNT, secret=opts.api_secret)
    for extra_key, extra_secret in opts.extra_keys:  # more keys of the one account
        keys[extra_key] = ApiKey(extra_key, ACCOUNT, secret=extra_secret)
    if opts.ed25519_public_key:
        pub = load_ed25519_public_key(read_public_key(opts.ed25519_public_key))
        name = opts.ed25519_api_key or "ed25519-" + opts.api_key
        keys[name] = ApiKey(name, ACCOUNT, public_key=pub)
    limits = Limits(
        weight_per_minute=opts.weight_limit,
        orders_per_10s=opts.orders_per_10s,
        orders_per_day=opts.orders_per_day,
        ban_after=opts.ban_after,
        speed=opts.speed,
    )
    ex = Exchange(
        clock=clock,
        markets=markets,
        keys=keys,
        limits=limits,
        faults=Faults(opts.faults, opts.seed),
        update_every_s=max(1, opts.kline_update_ms // 1000),
    )
    ex.book.add_account(ACCOUNT, dict(opts.balances))
    # Warm up: generate each path up to now (hour anchors since 2017, the current hour's
    # seconds) before serving, so the first request or subscription does not stall the
    # engine loop.
    now_s = clock.now_ms() // 1000
    for market in markets.values():
        market.price(market.visible_second(now_s))
        market.klines("1d", now_s * 1000, limit=1)
    return ex


async def serve(opts: SimOptions, stop: asyncio.Event) -> None:
    ex = build_exchange(opts)
    server = SimServer(
        ex,
        ws_ping_interval=opts.ws_ping_interval,
        shutdown_grace_s=opts.shutdown_grace_s,
        legacy_listen_key=opts.legacy_listen_key,
        info={"seed": opts.seed, "replay": str(opts.replay) if opts.replay else None},
    )
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, opts.host, opts.port, reuse_address=True)
    await site.start()
    log.info(
        "sim.listening",
        host=opts.host,
        port=opts.port,
        symbols=list(ex.markets),
        speed=opts.speed,
        seed=opts.seed,
        start_ms=ex.clock.start_ms,
        faults=ex.faults.as_dict(),
    )
    engine = asyncio.create_task(server.run_engine(), name="engine")
    try:
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait([engine, stopper], return_when=asyncio.FIRST_COMPLETED)
        if engine in done:
            log.error("engine.ended", error=repr(engine.exception()))
        await cancel_tasks([engine, stopper])
    finally:
        await server.close()
        await runner.cleanup()
