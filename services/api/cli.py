"""``botfleet api``: serve the control API and the dashboard with uvicorn."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: str = typer.Option(None, "--host", help="listen address (BOTFLEET_API_HOST)"),
        port: int = typer.Option(None, "--port", help="listen port (BOTFLEET_API_PORT)"),
    ) -> None:
        """Serve the control API and the live dashboard."""
        from services.api.main import serve

        raise typer.Exit(serve(host=host, port=port))
