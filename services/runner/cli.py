"""The ``botfleet runner`` command: flags override ``BOTFLEET_RUNNER_*`` settings."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("runner")
    def runner(
        capacity: int | None = typer.Option(None, help="most bots held (BOTFLEET_RUNNER_CAPACITY)"),
        lease_ms: int | None = typer.Option(None, help="lease length in ms"),
        reconcile_interval: float | None = typer.Option(
            None, help="seconds between reconcile passes"
        ),
        stale_grace: float | None = typer.Option(
            None, help="seconds past one interval after which data is stale"
        ),
        block_ms: int | None = typer.Option(None, help="XREAD block time in ms"),
        instance: str | None = typer.Option(None, help="this runner's name (BOTFLEET_INSTANCE)"),
        redis_url: str | None = typer.Option(None, help="Redis URL (BOTFLEET_REDIS_URL)"),
    ) -> None:
        """Run bots: claim them by lease, evaluate strategies, emit intents, keep the books."""
        from services.runner.app import main
        from services.runner.settings import RunnerSettings
        from shared.service import run_service
        from shared.settings import SettingsError, load_settings

        try:
            settings = load_settings(
                RunnerSettings,
                runner_capacity=capacity,
                runner_lease_ms=lease_ms,
                runner_reconcile_interval_s=reconcile_interval,
                runner_stale_grace_s=stale_grace,
                runner_block_ms=block_ms,
                instance=instance,
                redis_url=redis_url,
            )
        except SettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(run_service("runner", settings, lambda stop: main(settings, stop)))
