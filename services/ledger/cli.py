"""Registers ``botfleet ledger`` (the process) and ``botfleet ledger check`` (the
reconciliation report); heavy imports happen inside the commands."""

from __future__ import annotations

import typer

ledger_app = typer.Typer(
    help="The durable trade ledger (SQL history of orders, fills, round trips, equity).",
    invoke_without_command=True,
    no_args_is_help=False,
)


@ledger_app.callback()
def ledger(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="postgresql://... or sqlite:///... (BOTFLEET_LEDGER_DATABASE_URL)",
    ),
    batch: int | None = typer.Option(None, help="reports per transaction (BOTFLEET_LEDGER_BATCH)"),
    redis_url: str | None = typer.Option(None, "--redis-url", help="BOTFLEET_REDIS_URL"),
    instance: str | None = typer.Option(None, "--instance", help="consumer and health name"),
) -> None:
    """Run the ledger: stream:executions (group ledger) and the bots' records into SQL."""
    ctx.obj = {"database_url": database_url, "redis_url": redis_url, "instance": instance}
    if ctx.invoked_subcommand is not None:
        return
    from services.ledger.app import main
    from services.ledger.settings import LedgerSettings
    from shared.service import run_service
    from shared.settings import SettingsError, load_settings

    try:
        settings = load_settings(
            LedgerSettings,
            ledger_database_url=database_url,
            ledger_batch=batch,
            redis_url=redis_url,
            instance=instance,
        )
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_service("ledger", settings, lambda stop: main(settings, stop)))


@ledger_app.command("check")
def check(
    ctx: typer.Context,
    start: str = typer.Option(None, help="from (epoch ms or ISO date, UTC); default: 24 h ago"),
    end: str = typer.Option(
        None, help="until (epoch ms or ISO date, UTC), exclusive; default: now"
    ),
    symbol: list[str] = typer.Option([], "--symbol", "-s", help="symbols (default: the ledger's)"),
) -> None:
    """Compare the ledger's fills with the exchange's trades (myTrades); print every
    difference. Exit 0 when they agree, 1 when they differ, 2 when it cannot check."""
    import asyncio

    from services.ledger.check_cli import run_check
    from services.ledger.settings import LedgerSettings
    from shared.settings import SettingsError, load_settings

    given = ctx.obj or {}
    try:
        settings = load_settings(
            LedgerSettings,
            ledger_database_url=given.get("database_url"),
            redis_url=given.get("redis_url"),
            instance=given.get("instance"),
        )
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(asyncio.run(run_check(settings, start, end, symbol)))


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
