"""Klines by time range over REST ``GET /api/v3/klines``, cached on disk, as the
backtester's candle stream.

Owns the REST fetch of history and its cache: ``CACHE/HOST/SYMBOL/INTERVAL/YYYY-MM.csv``
(Binance's 12-column CSV, what :mod:`shared.klines` reads), one file per UTC month
of candle open times, written only once every candle of the month has closed. The
month still running is kept as ``YYYY-MM.part.csv`` with its closed candles only; a
later run asks the exchange for what came after them and no more. A second run over
cached months sends no request.

Requests are paged 1000 candles at a time. With a :class:`~shared.ratelimit.WeightBudget`
(a process with Redis: the backtest worker) each request reserves its weight in the
fleet's budget first and reports ``X-MBX-USED-WEIGHT-1M`` and 429/418 to it, as
ingestion does; without one (the CLI) the fetcher itself waits for the next minute
when the header says the minute is nearly spent, and sleeps a 429's ``Retry-After``.
Transport errors and 5xx are retried with capped, jittered backoff, a bounded number
of times. Rows are parsed at the boundary (``decode_rest_klines``) and checked again
on the way out by :func:`shared.klines.read_klines` (duplicates, order, gaps).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from shared.binance.backoff import backoff_delays, rate_limit_delay
from shared.binance.endpoints import KLINES, TIME, Endpoint, weight_of
from shared.binance.errors import (
    BinanceError,
    RateLimitedError,
    error_from_response,
    weight_from_headers,
)
from shared.binance.intervals import interval_ms
from shared.binance.parsing import decode_body, decode_rest_klines
from shared.binance.schemas import RestKline, ServerTime
from shared.klines import Kline, KlineError, read_klines
from shared.logging import get_logger
from shared.ratelimit import WeightBudget

log = get_logger(__name__)

PAGE = 1000  # §3.4: klines limit max 1000
CACHE_ENV = "BOTFLEET_KLINES_CACHE"
# Without a fleet budget: wait for the next minute once the exchange says this much of
# the 6,000 weight a minute is used (the rest is left to the other users of the IP).
WEIGHT_SOFT_LIMIT = 4800
MINUTE_MS = 60_000
# Candles closing within this of the local clock are not taken as closed (clock skew).
CLOSED_MARGIN_MS = 2_000


class FetchError(Exception):
    """History that could not be fetched (names the symbol, interval and reason)."""


def default_cache_dir() -> Path:
    """``$BOTFLEET_KLINES_CACHE``, else ``$XDG_CACHE_HOME/botfleet/klines``, else
    ``~/.cache/botfleet/klines``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "botfleet" / "klines"


def exchange_folder(rest_url: str) -> str:
    """The cache folder of an exchange: its REST host and port (``127.0.0.1_8421``)."""
    netloc = httpx.URL(rest_url).netloc.decode() or "exchange"
    return netloc.replace(":", "_")


def _month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def months(start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
    """``(YYYY-MM, first ms, next month's first ms)`` of every month touching
    ``[start_ms, end_ms)``."""
    first = datetime.fromtimestamp(start_ms / 1000, UTC)
    year, month = first.year, first.month
    out = []
    while True:
        begin = _month_start(year, month)
        if begin >= end_ms:
            break
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        out.append(
            (f"{datetime.fromtimestamp(begin / 1000, UTC):%Y-%m}", begin, _month_start(year, month))
        )
    return out


def _csv_row(row: RestKline) -> str:
    return ",".join(
        (
            str(row.open_time), row.open, row.high, row.low, row.close, row.volume,
            str(row.close_time), row.quote_volume, str(row.trades),
            row.taker_buy_base_volume, row.taker_buy_quote_volume, row.ignore,
        )
    )  # fmt: skip


def _last_open(path: Path) -> int | None:
    """Open time of the last row of a cache file (None when it has none)."""
    last = None
    with path.open() as fh:
        for line in fh:
            if line.strip():
                last = line
    return int(last.split(",", 1)[0]) if last else None


Sleep = Callable[[float], Awaitable[None]]


class KlineFetcher:
    """Fetches and caches one exchange's klines (``http``'s base URL is its REST root)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        cache_dir: Path | None = None,
        budget: WeightBudget | None = None,
        clock: Callable[[], int] | None = None,
        max_attempts: int = 6,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.http = http
        self.cache_dir = cache_dir or default_cache_dir()
        self.budget = budget
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.requests = 0
        self.rate_limited = 0
        self._rng = random.Random()

    # --- the files -----------------------------------------------------------------

    def folder(self, symbol: str, interval: str) -> Path:
        """``CACHE/HOST/SYMBOL/INTERVAL``: each exchange its own candles (testnet's are
        not production's, a simulator's are its seed's)."""
        return self.cache_dir / exchange_folder(str(self.http.base_url)) / symbol / interval

    async def ensure(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> list[Path]:
        """The cache files covering ``[start_ms, end_ms)``, fetching what is missing."""
        interval_ms(interval)  # an unknown interval is refused before any request
        if end_ms <= start_ms:
            raise FetchError(f"empty range: from {start_ms} is not before to {end_ms}")
        folder = self.folder(symbol, interval)
        folder.mkdir(parents=True, exist_ok=True)
        # One writer per folder: workers sharing a cache wait for each other.
        with (folder / ".lock").open("w") as lock:
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            return await self._ensure(folder, symbol, interval, start_ms, end_ms)

    async def _ensure(
        self, folder: Path, symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Path]:
        step = interval_ms(interval)
        closed_before: int | None = None  # a candle has closed iff its close is before this
        files = []
        for name, begin, end in months(start_ms, end_ms):
            done = folder / f"{name}.csv"
            if done.exists():
                files.append(done)
                continue
            if closed_before is None:
                closed_before = await self._closed_before()
            if begin + step - 1 >= closed_before:
                break  # not one candle of this month has closed yet
            part = folder / f"{name}.part.csv"
            last = _last_open(part) if part.exists() else None
            cursor = begin if last is None else last + step
            with part.open("a") as out:
                while cursor < end:
                    rows = await self._page(symbol, interval, cursor, end - 1)
                    closed = [r for r in rows if r.close_time < closed_before]
                    for row in closed:
                        out.write(_csv_row(row) + "\n")
                    if len(closed) < len(rows) or len(rows) < PAGE:
                        break
                    cursor = rows[-1].open_time + step
            if end - 1 < closed_before:  # every candle of the month has closed: final
                part.replace(done)
                files.append(done)
            else:
                files.append(part)
        return files

    async def klines(
        self, symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> Iterator[Kline]:
        """Fetch what is missing, then stream the candles opening in ``[start_ms, end_ms)``."""
        files = await self.ensure(symbol, interval, start_ms, end_ms)
        return stream_files(files, interval, start_ms, end_ms)

    # --- requests ------------------------------------------------------------------

    async def _closed_before(self) -> int:
        """The earlier of the local and the exchange's clock, less a margin: a candle
        closing before it is final (a replaying or lagging exchange is behind us)."""
        body = await self._call(TIME, {}, "time")
        try:
            server = decode_body(body, ServerTime).serverTime
        except ValueError as exc:
            raise FetchError(f"time: undecodable body: {exc}") from exc
        return min(self.clock(), server) - CLOSED_MARGIN_MS

    async def _page(self, symbol: str, interval: str, start: int, end: int) -> list[RestKline]:
        params: dict[str, Any] = {
            "symbol": symbol, "interval": interval,
            "startTime": start, "endTime": end, "limit": PAGE,
        }  # fmt: skip
        body = await self._call(KLINES, params, f"klines {symbol} {interval}")
        try:
            return decode_rest_klines(body)
        except ValueError as exc:  # msgspec errors are ValueErrors
            raise FetchError(f"klines {symbol} {interval}: undecodable body: {exc}") from exc

    async def _call(self, endpoint: Endpoint, params: dict[str, Any], what: str) -> bytes:
        """One request, retried (bounded) on 429/418, 5xx and transport errors."""
        delays = backoff_delays(0.5, 30.0, self._rng)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await self._get(endpoint, params, what)
            except RateLimitedError as exc:
                self.rate_limited += 1
                if attempt == self.max_attempts:
                    raise FetchError(f"{what}: rate limited: {exc}") from exc
                if self.budget is None:  # with a budget, reserve() waits out the ban
                    wait = min(rate_limit_delay(exc.retry_after_s, 60.0), 300.0)
                    log.warning("backtest.fetch_rate_limited", what=what, wait_s=wait)
                    await self.sleep(wait)
                continue
            except (httpx.TransportError, _ServerError) as exc:
                if attempt == self.max_attempts:
                    raise FetchError(f"{what}: {exc}") from exc
                wait = next(delays)
                log.warning("backtest.fetch_retry", what=what, error=str(exc), wait_s=wait)
                await self.sleep(wait)
        raise FetchError(f"{what}: no answer")  # pragma: no cover

    async def _get(self, endpoint: Endpoint, params: dict[str, Any], what: str) -> bytes:
        if self.budget is not None:
            await self.budget.reserve(weight_of(endpoint, params))
        self.requests += 1
        response = await self.http.get(endpoint.path, params=params)
        used = weight_from_headers(response.headers.items())
        if self.budget is not None:
            await self.budget.correct_from_header(used)
        elif used is not None and used >= WEIGHT_SOFT_LIMIT:
            now = self.clock()
            wait = (MINUTE_MS - now % MINUTE_MS) / 1000 + 0.05
            log.info("backtest.fetch_weight_wait", used=used, wait_s=round(wait, 2))
            await self.sleep(wait)
        if response.status_code == 200:
            return response.content
        error = error_from_response(
            response.status_code, response.content, response.headers.items()
        )
        if isinstance(error, RateLimitedError) and response.status_code in (418, 429):
            if self.budget is not None:
                await self.budget.note_rate_limited(response.status_code, error.retry_after_s)
            raise error
        if response.status_code >= 500:
            raise _ServerError(str(error))
        raise FetchError(f"{what}: {_wording(error)}")


class _ServerError(Exception):
    """A 5xx: retried."""


def _wording(error: BinanceError) -> str:
    code = f" (code {error.code})" if getattr(error, "code", None) is not None else ""
    return f"{error}{code}"


def stream_files(files: list[Path], interval: str, start_ms: int, end_ms: int) -> Iterator[Kline]:
    """The candles of consecutive cache files opening in ``[start_ms, end_ms)``, one
    interval apart across the files too (a gap is refused as in a kline file)."""
    step = interval_ms(interval)
    last: int | None = None
    for path in files:
        if path.stat().st_size == 0:
            continue  # a month before the symbol was listed
        # Gaps are judged here, inside the range only: a hole after its end is no matter.
        for k in read_klines(path, interval, "csv", allow_gaps=True):
            if k.open_time < start_ms:
                continue
            if k.open_time >= end_ms:
                return
            if last is not None and k.open_time != last + step:
                missing = (k.open_time - last) // step - 1
                raise KlineError(
                    f"{path.name}:{k.line}: gap of {missing} {interval} candle(s) before open "
                    f"time {k.open_time} (the exchange has no candles there)"
                )
            last = k.open_time
            yield k
    if last is None:
        raise KlineError(f"no closed {interval} candle between {start_ms} and {end_ms}")


def fetch_range(
    rest_url: str,
    symbol: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    *,
    cache_dir: Path | None = None,
) -> tuple[Iterator[Kline], int]:
    """For a process without Redis (the CLI): fetch what is missing, then the candle
    stream and the number of requests it took."""

    async def run() -> tuple[list[Path], int]:
        async with httpx.AsyncClient(base_url=rest_url, timeout=30.0) as http:
            fetcher = KlineFetcher(http, cache_dir=cache_dir)
            files = await fetcher.ensure(symbol, interval, start_ms, end_ms)
            return files, fetcher.requests

    files, requests = asyncio.run(run())
    return stream_files(files, interval, start_ms, end_ms), requests
