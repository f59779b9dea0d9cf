"""Registers ``botfleet ingestion``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("ingestion")
    def ingestion(
        redis_url: str = typer.Option(None, help="Redis URL (BOTFLEET_REDIS_URL)"),
        binance_env: str = typer.Option(None, help="sim, testnet or production"),
        rest_url: str = typer.Option(None, help="REST endpoint (BOTFLEET_BINANCE_REST_URL)"),
        ws_url: str = typer.Option(None, help="market WebSocket endpoint"),
        instance: str = typer.Option(None, help="name in leases and health keys"),
        shards: int = typer.Option(None, help="shards the subscriptions are split into"),
        max_shards: int = typer.Option(None, help="shards this instance may hold (0: all)"),
        max_streams_per_connection: int = typer.Option(None, help="<= 1024"),
        stale_grace_s: float = typer.Option(None, help="grace beyond the update period"),
        lease_ttl_s: float = typer.Option(None, help="shard lease TTL"),
    ) -> None:
        """Binance market data into Redis: candles, prices, exchange rules."""
        from shared.settings import SettingsError

        from .app import main

        try:
            code = main(
                redis_url=redis_url,
                binance_env=binance_env,
                binance_rest_url=rest_url,
                binance_ws_url=ws_url,
                instance=instance,
                ingestion_shards=shards,
                ingestion_max_shards=max_shards,
                ingestion_max_streams_per_connection=max_streams_per_connection,
                ingestion_stale_grace_s=stale_grace_s,
                ingestion_lease_ttl_s=lease_ttl_s,
            )
        except SettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(code)
