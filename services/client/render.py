"""Rich tables of the client's answers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
# The runner's own bookkeeping (idempotency, fees not yet priced): in --json, not tables.
BOOKKEEPING = frozenset({"applied_intents", "unpriced_fees"})
STATUS_STYLE = {"running": "green", "error": "red", "starting": "yellow", "stopping": "yellow"}


def _num(value: Any, digits: int = 2) -> str:
    """A money figure (a decimal string from the API) for display, never via a float."""
    try:
        return f"{Decimal(str(value)):,.{digits}f}"
    except (InvalidOperation, TypeError, ValueError):
        return "-"


def _nonzero(value: Any) -> bool:
    try:
        return bool(value) and Decimal(str(value)) != 0
    except InvalidOperation:
        return False


def _win_rate(stats: dict[str, str]) -> str:
    if stats.get("win_rate"):
        rate = float(stats["win_rate"])
        return f"{rate * 100 if rate <= 1 else rate:.1f}%"
    return "-"


def bots_table(page: dict[str, Any]) -> None:
    table = Table(title=f"bots ({page['total']})")
    table.add_column("id", no_wrap=True, min_width=26)  # never cut: it is what you type
    for col in ("name", "symbol", "strategy", "status", "position", "PnL", "win rate"):
        table.add_column(col)
    for bot in page["items"]:
        status = bot["status"] + (" (stale)" if bot.get("stale") else "")
        qty = bot["position"].get("qty", "")
        table.add_row(
            bot["id"],
            bot["name"],
            bot["symbol"],
            f"{bot['strategy']} {bot['interval']}",
            f"[{STATUS_STYLE.get(bot['status'], 'white')}]{status}[/]",
            qty if _nonzero(qty) else "flat",
            _num(bot["stats"].get("total_pnl", bot["stats"].get("realized_pnl"))),
            _win_rate(bot["stats"]),
        )
    console.print(table)


def bot_detail(bot: dict[str, Any], log: list[dict[str, Any]]) -> None:
    table = Table(title=f"bot {bot['id']}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key in (
        "name",
        "symbol",
        "interval",
        "strategy",
        "desired",
        "status",
        "status_reason",
        "owner",
        "error",
    ):
        if bot.get(key):
            table.add_row(key, str(bot[key]))
    if bot.get("stale"):
        table.add_row("stale", ", ".join(bot["stale"]))
    table.add_row("params", str(bot["config"].get("params", {})))
    for key, value in sorted(bot.get("position", {}).items()):
        if key not in BOOKKEEPING:
            table.add_row(f"position.{key}", value)
    for key, value in sorted(bot.get("stats", {}).items()):
        if key not in BOOKKEEPING:
            table.add_row(f"stats.{key}", value)
    console.print(table)
    if log:
        decisions(log, title="last decisions")


def decisions(log: list[dict[str, Any]], title: str = "decisions") -> None:
    table = Table(title=title)
    for col in ("time (UTC)", "kind", "reason", "details"):
        table.add_column(col)
    for entry in log:
        fields = dict(entry["fields"])
        ts = fields.pop("ts", "")
        when = (
            datetime.fromtimestamp(int(ts) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if str(ts).isdigit()
            else entry["id"]
        )
        kind, reason = fields.pop("kind", ""), fields.pop("reason", "")
        rest = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("type", "v"))
        table.add_row(when, str(kind), str(reason), rest)
    console.print(table)


def strategies(found: list[dict[str, Any]]) -> None:
    table = Table(title="strategies")
    for col in ("name", "title", "parameters (default)", "warm-up", "source"):
        table.add_column(col)
    for s in found:
        props = s["params_schema"].get("properties", {})
        params = ", ".join(f"{k}={p.get('default', '?')}" for k, p in props.items())
        table.add_row(s["name"], s["title"], params, str(s["warmup_candles"]), s["source"])
    console.print(table)


def accepted(body: dict[str, Any]) -> None:
    state = "done" if body["settled"] else "pending"
    console.print(
        f"{body['action']} {body['bot_id']}: desired={body['desired']} status={body['status']} ({state}); command {body['command_id']}"
    )


def health(report: dict[str, Any]) -> None:
    table = Table(title=f"fleet health: {report['status']}")
    for col in ("service", "instance", "state", "age", "figures"):
        table.add_column(col)
    table.add_row("redis", "", "[green]alive[/]", f"{report['redis']['ping_ms']} ms", "")
    for service, instances in report["services"].items():
        for inst in instances:
            if not inst["alive"]:
                state = "[red]dead[/]"
            elif not inst.get("healthy", True):
                state = f"[red]{inst.get('reason') or 'unhealthy'}[/]"
            else:
                state = "[green]alive[/]"
            figures = " ".join(
                f"{k}={v}" for k, v in inst["figures"].items() if k != "signal_to_ack_ms"
            )
            table.add_row(
                service, inst["instance"], state, f"{inst['age_ms'] / 1000:.1f}s", figures
            )
    for service in report["missing"]:
        table.add_row(service, "-", "[red]no healthy instance[/]", "", "")
    exchange = report.get("exchange")
    if exchange:
        state = "[green]up[/]" if exchange["ok"] else f"[red]down: {exchange['error']}[/]"
        ping = f"{exchange['ping_ms']} ms" if exchange.get("ping_ms") is not None else ""
        table.add_row("exchange", exchange["url"], state, ping, "")
    console.print(table)
    if report["stale_symbols"]:
        console.print(
            "stale symbols (as the runners see them): "
            + ", ".join(
                f"{s} ({ms / 1000:.0f}s)" if ms >= 0 else f"{s} (no price yet)"
                for s, ms in report["stale_symbols"].items()
            )
        )
    for bot in report["stale_bots"]:
        console.print(f"stale bot {bot['id']}: {', '.join(bot['symbols'])} {bot['reason']}")
    if report["halted"]:
        console.print(f"[bold red]TRADING HALTED[/]: {report['halt_reason']}")


def risk(state: dict[str, Any]) -> None:
    if state["halted"]:
        console.print(f"[bold red]halted[/]: {state['halt_reason']}")
    else:
        console.print("[green]trading allowed[/]")
    for key, value in sorted(state["limits"].items()):
        console.print(f"  {key} = {value}")
