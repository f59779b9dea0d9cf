"""``/api/v1/backtests``: queue a backtest job, follow it, fetch its result and its
candles; list the recent jobs. Jobs run in ``botfleet backtest-worker`` processes,
never here: this module only writes the job (hash, index, stream entry) and reads
what the worker wrote (services/backtest/jobs.py). The dashboard's page for them is
``/static/backtest.html``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED

from services.api.errors import Conflict, NotFound
from services.api.ids import ID_PATTERN, new_id
from services.api.repository import Repository
from shared import keys
from shared.backtests import BacktestRequest, JobStatus
from shared.messages import BacktestJob, encode
from shared.redis import now_ms

JobId = Annotated[str, Parameter(pattern=ID_PATTERN, description="job id (26-char ULID)")]
MAX_LISTED = 1000  # jobs kept in the index (each expires with its result anyway)


class BacktestJobView(msgspec.Struct, kw_only=True):
    """A job as the worker last wrote it."""

    id: str
    status: str
    progress: float
    candles: int
    phase: str | None = None
    error: str | None = None
    name: str = ""
    symbol: str = ""
    interval: str = ""
    strategy: str = ""
    start: int = 0
    end: int = 0
    created_at: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    worker: str | None = None
    net_pnl: str | None = None
    net_pnl_pct: float | None = None
    round_trips: int | None = None
    request: dict[str, Any] | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _view(job_id: str, raw: dict[Any, Any], *, with_request: bool) -> BacktestJobView:
    h = {_text(k): _text(v) for k, v in raw.items()}
    pct = h.get("net_pnl_pct")
    return BacktestJobView(
        id=job_id,
        status=h.get("status", ""),
        progress=float(h.get("progress") or 0),
        candles=int(h.get("candles") or 0),
        phase=h.get("phase"),
        error=h.get("error") or None,
        name=h.get("name", ""),
        symbol=h.get("symbol", ""),
        interval=h.get("interval", ""),
        strategy=h.get("strategy", ""),
        start=int(h.get("start") or 0),
        end=int(h.get("end") or 0),
        created_at=int(h.get("created_at") or 0),
        started_at=_int(h.get("started_at")),
        finished_at=_int(h.get("finished_at")),
        worker=h.get("worker"),
        net_pnl=h.get("net_pnl") or None,
        net_pnl_pct=float(pct) if pct and pct != "None" else None,
        round_trips=_int(h.get("round_trips")),
        request=json.loads(h["request"]) if with_request and h.get("request") else None,
    )


class BacktestController(Controller):
    path = "/api/v1/backtests"
    tags = ["backtests"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Queue a backtest: a bot config (as POST /api/v1/bots), a range, costs",
    )
    async def start(
        self, repo: NamedDependency[Repository], data: BacktestRequest
    ) -> BacktestJobView:
        job_id = new_id()
        created = now_ms()
        bot = data.bot
        request = data.model_dump_json(by_alias=True)
        fields = {
            "status": JobStatus.QUEUED.value, "progress": "0", "candles": "0",
            "name": bot.name, "symbol": bot.symbol, "interval": bot.interval,
            "strategy": bot.strategy, "start": str(data.start), "end": str(data.end),
            "created_at": str(created), "request": request,
        }  # fmt: skip
        message = BacktestJob(job_id=job_id, request=request, ts=created)
        async with repo.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.backtest_job(job_id), mapping=fields)
            pipe.zadd(keys.BACKTEST_INDEX, {job_id: created})
            pipe.zremrangebyrank(keys.BACKTEST_INDEX, 0, -MAX_LISTED - 1)
            pipe.xadd(keys.BACKTEST_JOBS, encode(message))
            await pipe.execute()
        return _view(job_id, fields, with_request=True)

    @get("/", summary="Recent backtest jobs, newest first")
    async def list_jobs(
        self,
        repo: NamedDependency[Repository],
        limit: Annotated[int, Parameter(ge=1, le=MAX_LISTED)] = 50,
    ) -> list[BacktestJobView]:
        ids = [_text(i) for i in await repo.redis.zrevrange(keys.BACKTEST_INDEX, 0, limit - 1)]
        async with repo.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.backtest_job(job_id))
            hashes = await pipe.execute()
        return [_view(i, h, with_request=False) for i, h in zip(ids, hashes, strict=True) if h]

    @get("/{job_id:str}", summary="One job: status, progress 0..1, error")
    async def job(self, repo: NamedDependency[Repository], job_id: JobId) -> BacktestJobView:
        raw = await repo.redis.hgetall(keys.backtest_job(job_id))
        if not raw:
            raise NotFound(f"no backtest job {job_id} (unknown or expired)", field="job_id")
        return _view(job_id, raw, with_request=True)

    @get(
        "/{job_id:str}/result",
        summary="A finished job's result: figures, round trips, equity curve "
        "(botfleet backtest --json's)",
    )
    async def result(self, repo: NamedDependency[Repository], job_id: JobId) -> Response[bytes]:
        return await _stored(repo, job_id, keys.backtest_result(job_id))

    @get(
        "/{job_id:str}/candles",
        summary="A finished job's candles for its chart: [[open_time, o, h, l, c], ...]",
    )
    async def candles(self, repo: NamedDependency[Repository], job_id: JobId) -> Response[bytes]:
        return await _stored(repo, job_id, keys.backtest_candles(job_id))


async def _stored(repo: Repository, job_id: str, key: str) -> Response[bytes]:
    """The JSON the worker stored at ``key`` as it is (no decode and re-encode)."""
    body = await repo.redis.get(key)
    if body is None:
        status = await repo.redis.hget(keys.backtest_job(job_id), "status")
        if status is None:
            raise NotFound(f"no backtest job {job_id} (unknown or expired)", field="job_id")
        if _text(status) != JobStatus.DONE:
            raise Conflict(f"backtest job {job_id} is {_text(status)}: no result", field="job_id")
        raise NotFound(f"the result of backtest job {job_id} has expired", field="job_id")
    return Response(body if isinstance(body, bytes) else body.encode(), media_type=MediaType.JSON)
