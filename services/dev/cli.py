"""``botfleet dev``: the whole fleet locally (``make run``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import typer


def _installed_commands(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def _can_bind(host: str, port: int) -> bool:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def register(app: typer.Typer) -> None:
    @app.command("dev")
    def dev(
        services: str = typer.Option(
            "all",
            "--services",
            help="comma-separated: exchange-sim,ingestion,gateway,runner,api (default: all installed)",
        ),
        runners: int = typer.Option(2, "--runners", min=0, max=64, help="runner processes"),
        no_demo: bool = typer.Option(False, "--no-demo", help="do not create the demo bots"),
        data_dir: Path = typer.Option(
            Path(".botfleet"), "--data-dir", help="Redis AOF, logs, token and credentials"
        ),
        api_host: str = typer.Option("127.0.0.1", "--api-host", help="API listen address"),
        api_port: int = typer.Option(8000, "--api-port", help="API and dashboard port"),
        sim_port: int = typer.Option(9100, "--sim-port", help="exchange simulator port"),
        sim_speed: float = typer.Option(
            60.0, "--sim-speed", min=1.0, help="simulator clock speed (60: a 1m candle per second)"
        ),
        redis_port: int = typer.Option(
            6390,
            "--redis-port",
            help="port of the private redis-server (ignored with BOTFLEET_REDIS_URL)",
        ),
        color: bool | None = typer.Option(
            None, "--color/--no-color", help="colour the prefixes (default: on a terminal)"
        ),
    ) -> None:
        """Run the whole fleet locally: Redis, the exchange simulator, every service, demo bots."""
        from services.dev import state, supervisor
        from services.dev.plan import DevOptions, PlanError, parse_services, ports_in_use

        try:
            chosen = parse_services(services, _installed_commands(app))
        except PlanError as exc:
            raise typer.BadParameter(str(exc), param_hint="--services") from None
        given_token = os.environ.get("BOTFLEET_API_TOKEN") or None
        if given_token is not None:
            from shared.tokens import token_problem

            # The API would refuse it at start-up and restart forever: refuse it now,
            # before anything runs or the banner says "running".
            problem = token_problem(given_token)
            if problem is not None:
                typer.echo(f"botfleet dev: BOTFLEET_API_TOKEN {problem}", err=True)
                raise typer.Exit(2)
        external = os.environ.get("BOTFLEET_REDIS_URL") or None
        if external is None and shutil.which("redis-server") is None:
            typer.echo(
                "botfleet dev needs redis-server (Debian: apt-get install redis-server) "
                "or BOTFLEET_REDIS_URL pointing at a Redis",
                err=True,
            )
            raise typer.Exit(2)
        options = DevOptions(
            data_dir=data_dir.resolve(),
            services=chosen,
            runners=runners,
            api_host=api_host,
            api_port=api_port,
            sim_port=sim_port,
            sim_speed=sim_speed,
            redis_port=redis_port,
            external_redis_url=external,
            demo=not no_demo,
            ledger_database_url=os.environ.get("BOTFLEET_LEDGER_DATABASE_URL") or None,
        )
        busy = ports_in_use(options, _can_bind)
        if busy:
            typer.echo(
                "botfleet dev: already in use: " + ", ".join(busy) + " — another botfleet dev "
                "or service is running; stop it or pick other ports with the flags named",
                err=True,
            )
            raise typer.Exit(2)
        state.prepare(options.data_dir)
        secrets = state.load_secrets(options.data_dir, given_token)
        raise typer.Exit(supervisor.run(options, secrets, colour=color))
