"""The ``botfleet`` command: one entry point that dispatches to each process.

Each service package registers its own commands in ``services/<name>/cli.py``
(``register(app)``); heavy imports happen inside the commands, so ``botfleet --help``
stays fast. This launcher is the only module that knows every service.
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

app = typer.Typer(
    name="botfleet",
    help="A fleet of trading bots for Binance Spot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order is the order of `botfleet --help`.
COMMAND_MODULES = (
    "services.exchange_sim.cli",
    "services.ingestion.cli",
    "services.runner.cli",
    "services.gateway.cli",
    "services.gateway.statement",
    "services.api.cli",
    "services.ledger.cli",
    "services.client.cli",
    "services.dev.cli",
    "services.backtest.cli",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None:
            continue
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(app)


@app.callback()
def _root() -> None:
    """A fleet of trading bots for Binance Spot."""


_register_all()


@app.command("version")
def version() -> None:
    """Print botfleet's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("botfleet"))


def main() -> None:
    app()
