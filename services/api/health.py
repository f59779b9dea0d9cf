"""The fleet's health report: every instance judged by :func:`shared.health.judge` (a
live process whose main loop stalls shows), the exchange probed when the fleet trades
on the simulator, and the stale data as the runners see it (their bots' ``stale``
field, written by the runners' stale gate), never a guess of the API's own.
"""

from __future__ import annotations

import time

import httpx

from services.api.models import ExchangeProbe, Health, ServiceInstance, StaleBot
from shared.bots import BotField
from shared.health import judge

REQUIRED_SERVICES = ("ingestion", "runner", "gateway")
PROBE_TIMEOUT_S = 2.0
_BEAT_FIELDS = ("service", "instance", "ts", "started_at")


async def probe_exchange(rest_url: str) -> ExchangeProbe:
    """``GET {rest_url}/api/v3/ping``: ok on a 200 within :data:`PROBE_TIMEOUT_S`."""
    url = rest_url.rstrip("/") + "/api/v3/ping"
    start = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            reply = await client.get(url)
    except httpx.HTTPError as exc:
        return ExchangeProbe(url=url, ok=False, error=f"{type(exc).__name__}: {exc}")
    elapsed = round((time.perf_counter() - start) * 1000, 3)
    if reply.status_code != 200:
        return ExchangeProbe(url=url, ok=False, ping_ms=elapsed, error=f"HTTP {reply.status_code}")
    return ExchangeProbe(url=url, ok=True, ping_ms=elapsed)


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def assess_health(
    *,
    now: int,
    exchange_now: int | None = None,
    ping_ms: float,
    beats: list[dict[str, str]],
    last_update: dict[str, str],
    bots: list[tuple[str, dict[str, str]]],
    halt: str | None,
    exchange: ExchangeProbe | None = None,
) -> Health:
    """Health of the fleet (pure) from heartbeats, market update times, the bots'
    ``stale`` and ``status_reason`` fields, the halt flag and the exchange probe.

    Heartbeats are stamped with local time (``now``); market updates with the
    exchange's (``exchange_now``, which a sped-up simulator runs ahead of ``now``).
    """
    market_now = now if exchange_now is None else exchange_now
    services: dict[str, list[ServiceInstance]] = {}
    for beat in beats:
        verdict = judge(beat, now)
        inst = ServiceInstance(
            service=beat["service"],
            instance=beat["instance"],
            alive=verdict.alive,
            age_ms=verdict.age_ms,
            started_at=_int(beat.get("started_at")),
            figures={k: v for k, v in beat.items() if k not in _BEAT_FIELDS},
            loop_age_ms=verdict.loop_age_ms,
            loop_stalled=verdict.loop_stalled,
            healthy=verdict.healthy,
            reason=verdict.reason(),
        )
        services.setdefault(inst.service, []).append(inst)
    for instances in services.values():
        instances.sort(key=lambda i: i.instance)
    missing = [s for s in REQUIRED_SERVICES if not any(i.healthy for i in services.get(s, []))]
    stale_bots = []
    stale_symbols: dict[str, int] = {}
    for bot_id, fields in bots:
        symbols = [s for s in fields.get(BotField.STALE, "").split(",") if s]
        if symbols:
            stale_bots.append(
                StaleBot(id=bot_id, symbols=symbols, reason=fields.get(BotField.STATUS_REASON, ""))
            )
            for symbol in symbols:
                ts = _int(last_update.get(symbol))
                stale_symbols[symbol] = market_now - ts if ts else -1
    unhealthy = any(not i.healthy for v in services.values() for i in v)
    exchange_down = exchange is not None and not exchange.ok
    status = "ok"
    if missing or stale_bots or unhealthy or exchange_down:
        status = "degraded"
    return Health(
        status=status,
        redis={"ok": True, "ping_ms": round(ping_ms, 3)},
        services=dict(sorted(services.items())),
        missing=missing,
        stale_symbols=dict(sorted(stale_symbols.items())),
        stale_bots=stale_bots,
        halted=halt is not None,
        halt_reason=halt,
        exchange=exchange,
    )
