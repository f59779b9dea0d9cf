"""Registers `botfleet gateway` (heavy imports happen inside the command)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("gateway")
    def gateway(
        mode: str = typer.Option(None, "--mode", help="paper or live (BOTFLEET_TRADING_MODE)"),
        env: str = typer.Option(None, "--env", help="sim, testnet or production"),
        rest_url: str = typer.Option(None, "--rest-url", help="explicit REST endpoint"),
        redis_url: str = typer.Option(None, "--redis-url", help="BOTFLEET_REDIS_URL"),
        instance: str = typer.Option(None, "--instance", help="consumer and health name"),
    ) -> None:
        """The execution gateway: order intents in, one execution report per intent out."""
        from services.gateway.app import SERVICE, main
        from services.gateway.settings import GatewaySettings
        from shared.service import run_service
        from shared.settings import SettingsError, load_settings

        try:
            settings = load_settings(
                GatewaySettings,
                trading_mode=mode,
                binance_env=env,
                binance_rest_url=rest_url,
                redis_url=redis_url,
                instance=instance,
            )
        except SettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(run_service(SERVICE, settings, lambda stop: main(settings, stop)))
