"""The shell of ``botfleet ledger check``: settings in, open the ledger, Redis (the
fleet's weight budget) and the exchange, run :func:`services.ledger.check.check`, print
every difference and a summary line."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import typer

from services.ledger.check import ExchangeSide, LedgerSide, check
from services.ledger.settings import LedgerSettings
from shared.ledger.engine import create_engine
from shared.ratelimit import WeightBudget
from shared.redis import REDIS_ERRORS, create_redis


def epoch_ms(value: str | None, default: int) -> int:
    """Epoch ms or an ISO date/time (UTC unless it names a zone); ``default`` if None."""
    if value is None or value == "":
        return default
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither epoch ms nor an ISO date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def run_check(
    settings: LedgerSettings, start_s: str | None, end_s: str | None, symbols: list[str]
) -> int:
    now = int(time.time() * 1000)
    end = epoch_ms(end_s, now)
    start = epoch_ms(start_s, end - 86_400_000)
    if start >= end:
        typer.echo("error: --start must be before --end", err=True)
        return 2
    if settings.ledger_api_key is None or settings.ledger_api_secret is None:
        typer.echo(
            "error: set BOTFLEET_LEDGER_API_KEY and BOTFLEET_LEDGER_API_SECRET "
            "(a read-only key of the account)",
            err=True,
        )
        return 2
    engine = create_engine(settings.ledger_database_url)
    redis = create_redis(settings.redis_url, retries=1)
    budget: WeightBudget | None = WeightBudget(redis)
    try:
        await redis.ping()
    except REDIS_ERRORS:
        budget = None  # no fleet to share the budget with: the check alone is far below it
    try:
        async with httpx.AsyncClient(base_url=settings.rest_url, timeout=15.0) as client:
            exchange = ExchangeSide(
                client,
                settings.ledger_api_key.get_secret_value(),
                settings.ledger_api_secret.get_secret_value(),
                budget,
            )
            differences, counts = await check(
                LedgerSide(engine), exchange, start, end, symbols or None
            )
    except (httpx.HTTPError, RuntimeError) as exc:
        typer.echo(f"error: cannot read the exchange's trades: {exc}", err=True)
        return 2
    finally:
        await engine.dispose()
        await redis.aclose()
    for difference in differences:
        typer.echo(difference.line())
    typer.echo(
        f"checked {counts['ledger_fills']} ledger fills against {counts['exchange_trades']} "
        f"exchange trades on {counts['symbols']} symbols "
        f"({datetime.fromtimestamp(start / 1000, UTC):%Y-%m-%d %H:%M} to "
        f"{datetime.fromtimestamp(end / 1000, UTC):%Y-%m-%d %H:%M} UTC): "
        f"{len(differences)} differences"
    )
    return 1 if differences else 0
