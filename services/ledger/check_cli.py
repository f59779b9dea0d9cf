"""The shell of ``botfleet ledger check``: settings in, open the ledger, run
:func:`services.ledger.check.check` (the exchange's side through ``botfleet statement``),
print every difference and a summary line."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer

from services.ledger.check import LedgerSide, StatementError, StatementSide, check
from services.ledger.settings import LedgerSettings
from shared.ledger.engine import create_engine


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
    engine = create_engine(settings.ledger_database_url)
    try:
        differences, counts = await check(
            LedgerSide(engine), StatementSide(), start, end, symbols or None
        )
    except StatementError as exc:
        typer.echo(f"error: cannot read the exchange's trades: {exc}", err=True)
        return 2
    finally:
        await engine.dispose()
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
