"""``botfleet bots|health|risk``: the control API from a terminal.

Talks to ``BOTFLEET_API_URL`` (default http://127.0.0.1:8000) with the bearer token
``BOTFLEET_API_TOKEN``; prints rich tables. ``botfleet health --service NAME`` is the
exception: it reads the heartbeat keys in Redis directly (``BOTFLEET_REDIS_URL``) and
exits 0 only when a live heartbeat of NAME exists, for container healthchecks.
"""

from __future__ import annotations

from typing import Any

import typer

bots_app = typer.Typer(help="List, create, start, stop and remove bots.", no_args_is_help=True)
risk_app = typer.Typer(help="Halt or resume trading fleet-wide.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bots_app, name="bots")
    app.add_typer(risk_app, name="risk")
    app.command("health")(health)
    from services.client.trades import trades

    app.command("trades")(trades)


def _api() -> Any:
    from services.client.http import ApiClient

    return ApiClient.from_env()


@bots_app.command("ls")
def bots_ls(
    status: str = typer.Option(None, help="only bots in this status"),
    symbol: str = typer.Option(None, help="only bots on this symbol"),
) -> None:
    """List bots."""
    from services.client import render

    params = {k: v for k, v in {"status": status, "symbol": symbol, "limit": 1000}.items() if v}
    render.bots_table(_api().call("GET", "/api/v1/bots", params=params))


@bots_app.command("show")
def bots_show(bot_id: str) -> None:
    """One bot: config, status, position, stats and its last decisions."""
    from services.client import render

    api = _api()
    bot = api.call("GET", f"/api/v1/bots/{bot_id}")
    log = api.call("GET", f"/api/v1/bots/{bot_id}/log", params={"limit": 10})
    render.bot_detail(bot, log)


@bots_app.command("create")
def bots_create(
    symbol: str = typer.Option(..., help="e.g. BTCUSDT"),
    strategy: str = typer.Option(..., help="strategy name (see /api/v1/strategies)"),
    quote_allocation: str = typer.Option(..., "--quote", help="quote asset the bot may trade with"),
    name: str = typer.Option(None, help="label (default SYMBOL-STRATEGY)"),
    interval: str = typer.Option("1m", help="kline interval"),
    param: list[str] = typer.Option([], "--param", "-p", help="strategy parameter KEY=VALUE"),
    set_: list[str] = typer.Option(
        [], "--set", help="any config field KEY=VALUE (dotted, JSON value)"
    ),
    start: bool = typer.Option(False, "--start", help="start it right away"),
) -> None:
    """Create a bot (stopped unless --start)."""
    from services.client import render
    from services.client.http import parse_assignments

    config: dict[str, Any] = {
        "name": name or f"{symbol}-{strategy}",
        "symbol": symbol,
        "interval": interval,
        "strategy": strategy,
        "quote_allocation": quote_allocation,
        "params": parse_assignments(param),
    }
    for key, value in parse_assignments(set_).items():
        config[key] = value
    api = _api()
    bot = api.call("POST", "/api/v1/bots", json=config)
    if start:
        api.call("POST", f"/api/v1/bots/{bot['id']}/start")
        bot = api.call("GET", f"/api/v1/bots/{bot['id']}")
    render.bot_detail(bot, [])


def _lifecycle(action: str, bot_id: str, wait: float) -> None:
    from services.client import render

    render.accepted(_api().call("POST", f"/api/v1/bots/{bot_id}/{action}", params={"wait": wait}))


@bots_app.command("start")
def bots_start(
    bot_id: str, wait: float = typer.Option(10.0, help="seconds to wait for running")
) -> None:
    """Start a bot."""
    _lifecycle("start", bot_id, wait)


@bots_app.command("stop")
def bots_stop(
    bot_id: str, wait: float = typer.Option(10.0, help="seconds to wait for stopped")
) -> None:
    """Stop a bot (it closes its position first when close_on_stop)."""
    _lifecycle("stop", bot_id, wait)


@bots_app.command("rm")
def bots_rm(bot_id: str) -> None:
    """Remove a stopped bot."""
    _api().call("DELETE", f"/api/v1/bots/{bot_id}")
    typer.echo(f"removed {bot_id}")


@risk_app.command("halt")
def risk_halt(reason: str = typer.Argument("halted by an operator")) -> None:
    """Stop new entries fleet-wide (exits stay allowed)."""
    from services.client import render

    render.risk(_api().call("POST", "/api/v1/risk/halt", json={"reason": reason}))


@risk_app.command("resume")
def risk_resume() -> None:
    """Lift the halt."""
    from services.client import render

    render.risk(_api().call("POST", "/api/v1/risk/resume"))


def health(
    service: str = typer.Option(
        None, "--service", help="exit 0 iff NAME has a live heartbeat in Redis (healthchecks)"
    ),
) -> None:
    """Health of every service (via the API), or of one service straight from Redis."""
    if service:
        from services.client.heartbeat import service_alive

        alive, detail = service_alive(service)
        typer.echo(detail)
        raise typer.Exit(0 if alive else 1)
    from services.client import render

    report = _api().call("GET", "/api/v1/bots/health")
    render.health(report)
    raise typer.Exit(0 if report["status"] == "ok" else 1)
