"""``botfleet trades``: the ledger's fills through the history API, as a table (one
page, newest first, with the cursor of the next) or, with ``--csv``, every fill the
filters select as CSV on stdout (or a file), streamed as the API sends it."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from services.client.http import ApiClient


def epoch_ms(value: str | None) -> int | None:
    """``1700000000000`` or an ISO date/time (UTC unless it says otherwise) -> epoch ms."""
    if value is None or value == "":
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither epoch ms nor an ISO date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def trades(
    bot: str = typer.Option(None, "--bot", help="one bot's fills (its id or name)"),
    symbol: str = typer.Option(None, help="e.g. BTCUSDT"),
    side: str = typer.Option(None, help="BUY or SELL"),
    start: str = typer.Option(None, help="from (epoch ms or ISO date, UTC), inclusive"),
    end: str = typer.Option(None, help="until (epoch ms or ISO date, UTC), exclusive"),
    limit: int = typer.Option(50, help="rows in the table"),
    cursor: str = typer.Option(None, help="next_cursor printed under the previous table"),
    csv: bool = typer.Option(False, "--csv", help="every selected fill as CSV"),
    out: str = typer.Option(None, "--out", "-o", help="write the CSV to this file"),
    as_json: bool = typer.Option(False, "--json", help="print the API's JSON page instead"),
) -> None:
    """Fills from the trade ledger (the whole history, not only what Redis keeps)."""
    from services.client.http import ApiClient, print_json

    api = ApiClient.from_env()
    params: dict[str, Any] = {
        # the ledger keeps removed bots' fills: a name no live bot has is taken as an id
        "bot_id": (api.find_bot_id(bot) or bot) if bot else None,
        "symbol": symbol,
        "side": side.upper() if side else None,
        "start": epoch_ms(start),
        "end": epoch_ms(end),
        "cursor": cursor,
    }
    params = {k: v for k, v in params.items() if v is not None}
    if csv:
        _csv(api, {**params, "format": "csv"}, out)
        return
    page = api.call("GET", "/api/v1/trades", params={**params, "limit": limit})
    if as_json:
        print_json(page)
    else:
        _table(page)


def _table(page: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="trades (newest first)")
    for col in ("time (UTC)", "bot", "symbol", "side", "qty", "price", "fee", "trade id"):
        table.add_column(col)
    for t in page["items"]:
        when = datetime.fromtimestamp(t["ts"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        fee = f"{t['commission']} {t['commission_asset']}"
        table.add_row(
            when, t["bot_id"], t["symbol"], t["side"], t["qty"], t["price"], fee,
            str(t["trade_id"] or "-"),
        )  # fmt: skip
    console = Console()
    console.print(table)
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")


def _csv(api: ApiClient, params: dict[str, Any], out: str | None) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
    target = open(out, "w", encoding="utf-8", newline="") if out else sys.stdout  # noqa: SIM115
    try:
        with httpx.stream(
            "GET", api.url + "/api/v1/trades", params=params, headers=headers, timeout=api.timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                typer.echo(f"error: HTTP {response.status_code}: {response.text[:300]}", err=True)
                raise typer.Exit(1)
            for chunk in response.iter_text():
                target.write(chunk)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the API at {api.url}: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        if out:
            target.close()
        else:
            target.flush()
