"""``botfleet backtest-worker``: runs the backtest jobs the API queues, outside the API.

Owns the job loop. Jobs arrive on ``stream:backtest-jobs`` (consumer group
``backtest-workers``: each job goes to one of however many workers run). A job is a
:class:`~shared.messages.BacktestJob`; an entry that does not decode, or whose request
the model refuses, is dead-lettered and its job marked ``failed`` with the reason, and
the loop carries on. For a good job the worker fetches the range over REST (the disk
cache of :mod:`services.backtest.fetch`, inside the fleet's weight budget), runs
``Backtest(bot, rules, costs)`` over it in a thread, and writes to the job's hash
(``backtest:{id}``): ``status`` (queued, running, done, failed), ``progress`` 0..1 and
``candles`` every ``backtest_progress_interval_s``, ``error``. The result (the JSON
``botfleet backtest --json`` prints) and the candles of the chart are stored under their
own keys; all three expire after ``backtest_result_ttl_s``.

While it runs a job the worker re-claims the job's entry at each progress write, so
the entry never looks idle; a worker that died leaves its entry idle, and another takes
it over after ``backtest_claim_idle_ms`` and runs the job again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import ValidationError

from services.backtest.engine import Backtest
from services.backtest.fetch import FetchError, KlineFetcher
from services.backtest.rules import RulesError, default_rules
from services.backtest.settings import WorkerSettings
from shared import keys
from shared.backtests import BacktestRequest, JobStatus
from shared.binance.errors import BinanceError
from shared.binance.rules import SymbolRules, rules_from_json
from shared.fills import Costs
from shared.klines import Kline, KlineError
from shared.logging import get_logger
from shared.messages import BacktestJob
from shared.ratelimit import BudgetExhausted, WeightBudget
from shared.redis import REDIS_ERRORS, Heartbeat, connect, now_ms
from shared.service import supervise
from shared.streams import dead_letter, decode_entry, ensure_group, is_group_lost
from shared.validation import describe

log = get_logger(__name__)

SERVICE = "backtest-worker"
CHART_BARS = 5_000  # at most this many bars in a job's chart (candles merged evenly)
# A job failing on its input (these) is reported as such; anything else is a bug,
# reported as an internal error, and the worker carries on.
JOB_ERRORS = (
    FetchError, KlineError, RulesError, BinanceError, BudgetExhausted, httpx.HTTPError,
    ArithmeticError, ValueError,
)  # fmt: skip


class ChartBars:
    """The run's candles merged ``factor`` at a time: ``[open_time, o, h, l, c]``."""

    def __init__(self, expected: int) -> None:
        self.factor = max(1, math.ceil(expected / CHART_BARS))
        self.bars: list[list[float]] = []
        self._n = 0

    def add(self, k: Kline) -> None:
        if self._n % self.factor == 0:
            self.bars.append([k.open_time, k.open, k.high, k.low, k.close])
        else:
            bar = self.bars[-1]
            bar[2] = max(bar[2], k.high)
            bar[3] = min(bar[3], k.low)
            bar[4] = k.close
        self._n += 1


class Run:
    """One job's candle stream, counted (the progress) and charted on the way."""

    def __init__(self, klines: Iterator[Kline], expected: int) -> None:
        self.klines = klines
        self.expected = max(1, expected)
        self.done = 0
        self.chart = ChartBars(expected)

    def __iter__(self) -> Iterator[Kline]:
        add = self.chart.add
        for k in self.klines:
            add(k)
            self.done += 1
            yield k

    @property
    def progress(self) -> float:
        return min(0.99, self.done / self.expected)


class Worker:
    def __init__(
        self, settings: WorkerSettings, redis: Any, http: httpx.AsyncClient, budget: WeightBudget
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.fetcher = KlineFetcher(http, cache_dir=settings.klines_cache, budget=budget)
        self.consumer = settings.instance
        self.done = 0
        self.failed = 0

    # --- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        await ensure_group(self.redis, keys.BACKTEST_JOBS, keys.BACKTEST_GROUP)
        log.info("backtest.worker_ready", consumer=self.consumer)
        while True:
            try:
                entry = await self._next()
                if entry is not None:
                    await self.handle(*entry)
            except REDIS_ERRORS as exc:
                log.warning("backtest.redis_error", error=str(exc))
                await asyncio.sleep(1.0)
            except Exception as exc:
                if not is_group_lost(exc):
                    raise
                await ensure_group(self.redis, keys.BACKTEST_JOBS, keys.BACKTEST_GROUP)

    async def _next(self) -> tuple[str, dict[Any, Any]] | None:
        """A job left by a dead worker first, else a new one (blocking a while)."""
        claimed = await self.redis.xautoclaim(
            keys.BACKTEST_JOBS, keys.BACKTEST_GROUP, self.consumer,
            min_idle_time=self.settings.backtest_claim_idle_ms, start_id="0-0", count=1,
        )  # fmt: skip
        entries = claimed[1] if claimed else []
        if entries:
            entry_id, fields = entries[0]
            if fields:
                log.info("backtest.job_taken_over", entry_id=_text(entry_id))
                return _text(entry_id), fields
            await self._ack(_text(entry_id))  # deleted by trimming
            return None
        reply = await self.redis.xreadgroup(
            keys.BACKTEST_GROUP, self.consumer, {keys.BACKTEST_JOBS: ">"},
            count=1, block=self.settings.backtest_block_ms,
        )  # fmt: skip
        for _stream, items in reply or []:
            for entry_id, fields in items:
                return _text(entry_id), fields
        return None

    async def _ack(self, entry_id: str) -> None:
        await self.redis.xack(keys.BACKTEST_JOBS, keys.BACKTEST_GROUP, entry_id)

    # --- one job -------------------------------------------------------------------

    async def handle(self, entry_id: str, fields: dict[Any, Any]) -> None:
        job = await decode_entry(
            self.redis, keys.BACKTEST_JOBS, entry_id, fields, BacktestJob, service=SERVICE
        )
        if job is None:
            await self._ack(entry_id)
            return
        key = keys.backtest_job(job.job_id)
        status = await self.redis.hget(key, "status")
        if _text(status) in (JobStatus.DONE, JobStatus.FAILED):
            await self._ack(entry_id)  # finished before a crash lost the ack
            return
        try:
            request = BacktestRequest.model_validate_json(job.request)
        except ValidationError as exc:
            reason = f"invalid backtest request: {describe(exc)}"
            await dead_letter(
                self.redis, keys.BACKTEST_JOBS, entry_id, fields, reason, service=SERVICE
            )
            await self._finish(job.job_id, JobStatus.FAILED, error=reason)
            await self._ack(entry_id)
            return
        try:
            await self.execute(entry_id, job.job_id, request)
        except JOB_ERRORS as exc:
            log.info("backtest.job_failed", job=job.job_id, error=str(exc))
            await self._finish(job.job_id, JobStatus.FAILED, error=str(exc))
        except REDIS_ERRORS:
            raise  # not the job's fault: left pending, retried by a worker
        except Exception as exc:
            log.exception("backtest.job_crashed", job=job.job_id, error=repr(exc))
            await self._finish(job.job_id, JobStatus.FAILED, error=f"internal error: {exc!r}")
        await self._ack(entry_id)

    async def execute(self, entry_id: str, job_id: str, request: BacktestRequest) -> None:
        bot = request.bot
        key = keys.backtest_job(job_id)
        await self.redis.hset(
            key,
            mapping={
                "status": JobStatus.RUNNING.value, "progress": "0", "candles": "0",
                "phase": "fetching", "worker": self.consumer, "started_at": str(now_ms()),
            },
        )  # fmt: skip
        run: Run | None = None

        async def keep() -> None:
            # From the first request on: the fetch of a long range takes a while too.
            while True:
                await asyncio.sleep(self.settings.backtest_progress_interval_s)
                try:
                    await self._progress(entry_id, key, run)
                except REDIS_ERRORS as exc:
                    log.warning("backtest.progress_not_written", job=job_id, error=str(exc))

        keeper = asyncio.create_task(keep(), name=f"keep-{job_id}")
        try:
            rules = await self._rules(bot.symbol)
            costs = Costs(
                taker_fee=request.fee, slippage=request.slippage, fee_asset=request.fee_asset
            )
            engine = Backtest(bot, rules, costs)
            klines = await self.fetcher.klines(bot.symbol, bot.interval, request.start, request.end)
            run = Run(klines, request.candles())
            await self.redis.hset(key, "phase", "backtesting")
            await asyncio.to_thread(engine.run, run)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        result = engine.summary()
        ttl = self.settings.backtest_result_ttl_s
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.backtest_result(job_id), json.dumps(result), ex=ttl)
            pipe.set(keys.backtest_candles(job_id), json.dumps(run.chart.bars), ex=ttl)
            await pipe.execute()
        await self._finish(
            job_id,
            JobStatus.DONE,
            candles=str(run.done),
            net_pnl=str(result.get("net_pnl", "")),
            net_pnl_pct=str(result.get("net_pnl_pct", "")),
            round_trips=str(result.get("round_trips", "")),
        )
        self.done += 1
        log.info("backtest.job_done", job=job_id, candles=run.done)

    async def _progress(self, entry_id: str, key: str, run: Run | None) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            if run is not None:
                mapping = {"progress": f"{run.progress:.4f}", "candles": str(run.done)}
                pipe.hset(key, mapping=mapping)
            # Touch the entry: a running job is never taken for a dead worker's.
            pipe.xclaim(
                keys.BACKTEST_JOBS, keys.BACKTEST_GROUP, self.consumer, 0, [entry_id], justid=True
            )
            await pipe.execute()

    async def _finish(self, job_id: str, status: JobStatus, **fields: str) -> None:
        key = keys.backtest_job(job_id)
        mapping = {"status": status.value, "finished_at": str(now_ms()), **fields}
        if status is JobStatus.DONE:
            mapping["progress"] = "1"
        else:
            self.failed += 1
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, self.settings.backtest_result_ttl_s)
            await pipe.execute()

    async def _rules(self, symbol: str) -> SymbolRules:
        """The exchange's rules as ingestion cached them, else the simulator's defaults
        for the well-known symbols (what ``botfleet backtest`` uses without ``--rules``)."""
        raw = await self.redis.hget(keys.EXCHANGE_SYMBOLS, symbol)
        if raw:
            return rules_from_json(raw)
        return default_rules(symbol)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


async def main(settings: WorkerSettings, stop: asyncio.Event) -> None:
    redis = await connect(settings.redis_url)
    budget = WeightBudget(redis, background=True)
    worker = Worker(
        settings, redis, httpx.AsyncClient(base_url=settings.rest_url, timeout=30.0), budget
    )
    heartbeat = Heartbeat(
        redis, SERVICE, settings.instance, lambda: {"done": worker.done, "failed": worker.failed}
    )
    try:
        await supervise(stop, {"jobs": worker.run(), "heartbeat": heartbeat.run()})
    finally:
        with contextlib.suppress(*REDIS_ERRORS):
            await heartbeat.clear()
        await worker.fetcher.http.aclose()
        await redis.aclose()
