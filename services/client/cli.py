"""``botfleet bots|strategies|risk|trades|health``: the control API from a terminal.

Every bot argument takes an id or a name; every list takes ``--json`` (the API's
answer as it came) instead of a table.

Talks to ``BOTFLEET_API_URL`` (default http://127.0.0.1:8000) with the bearer token
``BOTFLEET_API_TOKEN``. ``botfleet health --service NAME [--instance ID]`` is the
exception: it reads the heartbeat keys in Redis directly (``BOTFLEET_REDIS_URL`` or
``--redis-url``) and exits 0 only when that one replica (default: this host's) is
healthy, for container healthchecks (services/client/heartbeat.py).
"""

from __future__ import annotations

from typing import Any

import typer

bots_app = typer.Typer(help="List, create, start, stop and remove bots.", no_args_is_help=True)
risk_app = typer.Typer(
    help="Show or set portfolio limits; halt or resume trading fleet-wide.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(bots_app, name="bots")
    app.add_typer(risk_app, name="risk")
    app.command("health")(health)
    from services.client.trades import trades

    app.command("trades")(trades)
    app.command("strategies")(strategies)


def _api() -> Any:
    from services.client.http import ApiClient

    return ApiClient.from_env()


JSON = typer.Option(False, "--json", help="print the API's JSON answer instead of a table")
BOT = typer.Argument(..., help="bot id (26 characters) or its name")


@bots_app.command("ls")
def bots_ls(
    status: str = typer.Option(None, help="only bots in this status (stopped, running, ...)"),
    symbol: str = typer.Option(None, help="only bots on this symbol, e.g. BTCUSDT"),
    as_json: bool = JSON,
) -> None:
    """List bots (every page)."""
    from services.client import render
    from services.client.http import PAGE, print_json

    api = _api()
    filters = {k: v for k, v in {"status": status, "symbol": symbol}.items() if v}
    items: list[dict[str, Any]] = []
    while True:
        page = api.call(
            "GET", "/api/v1/bots", params={**filters, "offset": len(items), "limit": PAGE}
        )
        items.extend(page["items"])
        if len(items) >= page["total"] or not page["items"]:
            break
    everything = {"items": items, "total": len(items), "offset": 0, "limit": len(items)}
    if as_json:
        print_json(everything)
    else:
        render.bots_table(everything)


@bots_app.command("show")
def bots_show(bot: str = BOT, as_json: bool = JSON) -> None:
    """One bot: config, status, position, stats and its last decisions."""
    from services.client import render
    from services.client.http import print_json

    api = _api()
    bot_id = api.bot_id(bot)
    found = api.call("GET", f"/api/v1/bots/{bot_id}")
    if as_json:
        print_json(found)
        return
    log = api.call("GET", f"/api/v1/bots/{bot_id}/log", params={"limit": 10})
    render.bot_detail(found, log)


@bots_app.command("logs")
def bots_logs(
    bot: str = BOT,
    limit: int = typer.Option(100, min=1, max=1000, help="entries to read, newest first"),
    holds: bool = typer.Option(False, "--holds", help="show 'hold' decisions too"),
    as_json: bool = JSON,
) -> None:
    """A bot's decision log (holds left out unless --holds), oldest first."""
    from services.client import render
    from services.client.http import print_json

    api = _api()
    entries = api.call("GET", f"/api/v1/bots/{api.bot_id(bot)}/log", params={"limit": limit})
    if not holds:
        entries = [e for e in entries if e["fields"].get("kind") != "hold"]
    if as_json:
        print_json(entries)
    else:
        render.decisions(list(reversed(entries)))


@bots_app.command("create")
def bots_create(
    symbol: str = typer.Option(..., help="Binance Spot symbol, e.g. BTCUSDT"),
    strategy: str = typer.Option(..., help="strategy name (see `botfleet strategies`)"),
    quote_allocation: str = typer.Option(
        ...,
        "--quote",
        help="amount of the quote asset the bot may trade with, e.g. 500 (USDT on BTCUSDT)",
    ),
    name: str = typer.Option(None, help="unique label (default SYMBOL-STRATEGY)"),
    interval: str = typer.Option("1m", help="kline interval, e.g. 1m, 5m, 1h"),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="strategy parameter KEY=VALUE (JSON value), repeatable"
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="any config field KEY=VALUE (dotted key, JSON value), repeatable"
    ),
    start: bool = typer.Option(False, "--start", help="start it right away"),
    as_json: bool = JSON,
) -> None:
    """Create a bot (stopped unless --start)."""
    from services.client import render
    from services.client.http import parse_assignments, print_json

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
    if as_json:
        print_json(bot)
    else:
        render.bot_detail(bot, [])


def _lifecycle(action: str, bot: str, wait: float) -> None:
    from services.client import render

    api = _api()
    render.accepted(
        api.call("POST", f"/api/v1/bots/{api.bot_id(bot)}/{action}", params={"wait": wait})
    )


@bots_app.command("start")
def bots_start(
    bot: str = BOT,
    wait: float = typer.Option(10.0, help="seconds to wait for running (0 = do not wait)"),
) -> None:
    """Start a bot."""
    _lifecycle("start", bot, wait)


@bots_app.command("stop")
def bots_stop(
    bot: str = BOT,
    wait: float = typer.Option(10.0, help="seconds to wait for stopped (0 = do not wait)"),
) -> None:
    """Stop a bot (it closes its position first when close_on_stop)."""
    _lifecycle("stop", bot, wait)


@bots_app.command("rm")
def bots_rm(bot: str = BOT) -> None:
    """Remove a stopped bot."""
    api = _api()
    bot_id = api.bot_id(bot)
    api.call("DELETE", f"/api/v1/bots/{bot_id}")
    typer.echo(f"removed {bot_id}")


def strategies(as_json: bool = JSON) -> None:
    """The strategies bots can run, with their parameters and defaults."""
    from services.client import render
    from services.client.http import print_json

    found = _api().call("GET", "/api/v1/strategies")
    if as_json:
        print_json(found)
    else:
        render.strategies(found)


@risk_app.command("show")
def risk_show(as_json: bool = JSON) -> None:
    """The portfolio limits and whether trading is halted."""
    from services.client import render
    from services.client.http import print_json

    state = _api().call("GET", "/api/v1/risk")
    if as_json:
        print_json(state)
    else:
        render.risk(state)


@risk_app.command("set")
def risk_set(
    limits: list[str] = typer.Argument(
        ...,
        help="LIMIT=AMOUNT, e.g. max_exposure_quote=5000 (an amount of the quote asset); "
        "LIMIT= (empty) removes that limit; the other limits are kept",
    ),
    as_json: bool = JSON,
) -> None:
    """Change some portfolio limits (the others stay as they are)."""
    from services.client import render
    from services.client.http import print_json

    api = _api()
    current = {k: v for k, v in api.call("GET", "/api/v1/risk")["limits"].items() if v != ""}
    for item in limits:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not LIMIT=AMOUNT")
        if value.strip():
            current[key.strip()] = value.strip()
        else:
            current.pop(key.strip(), None)
    state = api.call("PUT", "/api/v1/risk/limits", json=current)
    if as_json:
        print_json(state)
    else:
        render.risk(state)


@risk_app.command("halt")
def risk_halt(
    reason: str = typer.Argument("halted by an operator", help="why (shown everywhere)"),
) -> None:
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
        None,
        "--service",
        help="a service name (runner, gateway, ...): exit 0 iff THIS replica of it is "
        "healthy in Redis (container healthchecks)",
    ),
    instance: str = typer.Option(
        None,
        "--instance",
        help="with --service: the instance id to check (default: BOTFLEET_INSTANCE, else "
        "this host's instance)",
    ),
    redis_url: str = typer.Option(
        None,
        "--redis-url",
        help="with --service: the Redis to read (default: BOTFLEET_REDIS_URL)",
    ),
    as_json: bool = JSON,
) -> None:
    """Health of every service (via the API), or of one replica straight from Redis."""
    if service:
        from services.client.heartbeat import check_instance

        healthy, detail = check_instance(service, instance, redis_url)
        typer.echo(detail)
        raise typer.Exit(0 if healthy else 1)
    if instance or redis_url:
        typer.echo("error: --instance and --redis-url go with --service", err=True)
        raise typer.Exit(2)
    from services.client import render
    from services.client.http import print_json

    report = _api().call("GET", "/api/v1/bots/health")
    if as_json:
        print_json(report)
    else:
        render.health(report)
    raise typer.Exit(0 if report["status"] == "ok" else 1)
