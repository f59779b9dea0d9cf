"""``botfleet statement``: the exchange's own trades (``GET /api/v3/myTrades``, reference
§3.12) as JSON lines on stdout — the exchange's side of ``botfleet ledger check``.

It lives here because only the gateway holds API keys and signs (DESIGN "Processes"):
it reads the gateway's settings (``BOTFLEET_BINANCE_API_KEY`` and the HMAC secret or
Ed25519 key; a read-only key is enough) and signs through the gateway's one client
(:class:`services.gateway.exchange.ExchangeClient`: the fleet's weight budget, the
breaker, the exchange clock). The ledger runs it as a child process and never sees a key.

Two kinds of request: every trade of each ``--symbol`` in ``[--start, --end)`` (24-hour
windows, the most one request may span, each read on with ``fromId`` while pages are
full), and every trade of each ``--order SYMBOL:ORDER_ID``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the command imports them when run (`botfleet --help` stays fast)
    from services.gateway.exchange import ExchangeClient
    from services.gateway.settings import GatewaySettings
    from shared.binance.schemas import MyTrade

DAY_MS = 86_400_000
PAGE = 1000


async def trades_between(
    client: ExchangeClient, symbol: str, start: int, end: int
) -> AsyncIterator[MyTrade]:
    """Every trade of ``symbol`` with ``start <= time < end``, oldest first."""
    window = start
    while window < end:
        window_end = min(end, window + DAY_MS) - 1  # endTime is inclusive
        page = await client.my_trades_page(
            symbol, start_time=window, end_time=window_end, limit=PAGE
        )
        while True:
            for trade in page:
                if window <= trade.time <= window_end:
                    yield trade
            if len(page) < PAGE or page[-1].time > window_end:
                break
            page = await client.my_trades_page(symbol, from_id=page[-1].id + 1, limit=PAGE)
        window = window_end + 1


async def write_statement(
    settings: GatewaySettings, symbols: list[str], start: int, end: int, orders: list[str]
) -> int:
    import httpx
    import msgspec

    from services.gateway.breaker import CircuitBreaker
    from services.gateway.exchange import ExchangeClient
    from services.gateway.live import load_signer
    from shared.ratelimit import OrderBudget, WeightBudget
    from shared.redis import create_redis

    if settings.binance_api_key is None:
        typer.echo("error: BOTFLEET_BINANCE_API_KEY is not set", err=True)
        return 2
    encoder = msgspec.json.Encoder()
    redis = create_redis(settings.redis_url, retries=1)
    http = httpx.AsyncClient(base_url=settings.rest_url, timeout=settings.gateway_http_timeout_s)
    try:
        signer = await asyncio.to_thread(load_signer, settings)
        weight = WeightBudget(redis, limit_per_minute=settings.gateway_weight_limit)
        client = ExchangeClient(
            http,
            api_key=settings.binance_api_key.get_secret_value(),
            signer=signer,
            weight=weight,
            orders=OrderBudget(redis),
            breaker=CircuitBreaker(
                settings.gateway_breaker_failures, settings.gateway_breaker_cooldown_s
            ),
            recv_window_ms=settings.gateway_recv_window_ms,
            use_server_time=settings.gateway_use_server_time,
        )
        weight.clock = client.now_ms
        if settings.gateway_use_server_time:
            await client.sync_time()
        out = sys.stdout.buffer
        for symbol in symbols:
            async for trade in trades_between(client, symbol, start, end):
                out.write(encoder.encode(trade) + b"\n")
        for item in orders:
            symbol, _, order_id = item.partition(":")
            for trade in await client.my_trades(symbol, int(order_id)):
                out.write(encoder.encode(trade) + b"\n")
        out.flush()
        return 0
    finally:
        await http.aclose()
        await redis.aclose()


def register(app: typer.Typer) -> None:
    @app.command("statement")
    def statement(
        symbol: list[str] = typer.Option([], "--symbol", "-s", help="every trade of it"),
        start: int = typer.Option(0, help="from this epoch ms (inclusive)"),
        end: int = typer.Option(0, help="until this epoch ms (exclusive)"),
        order: list[str] = typer.Option([], "--order", help="SYMBOL:ORDER_ID: its trades"),
    ) -> None:
        """The exchange's own trades (myTrades) as JSON lines, signed by the gateway's
        client (the exchange side of `botfleet ledger check`)."""
        from services.gateway.settings import GatewaySettings
        from shared.logging import configure_logging
        from shared.settings import SettingsError, load_settings

        if symbol and not 0 <= start < end:
            raise typer.BadParameter("need 0 <= --start < --end")
        for item in order:
            name, sep, number = item.partition(":")
            if not sep or not name or not number.isdigit():
                raise typer.BadParameter(f"{item!r} is not SYMBOL:ORDER_ID", param_hint="--order")
        try:
            settings = load_settings(GatewaySettings)
        except SettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        # stdout carries the trades only: every log line goes to stderr
        configure_logging(
            "statement", settings.instance, fmt=settings.log_format.value,
            level=settings.log_level, stream=sys.stderr,
        )  # fmt: skip
        import httpx

        from shared.binance.errors import BinanceError
        from shared.redis import REDIS_ERRORS

        try:
            code = asyncio.run(write_statement(settings, symbol, start, end, order))
        except (BinanceError, httpx.HTTPError, *REDIS_ERRORS) as exc:  # one line for people
            typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(2) from None
        raise typer.Exit(code)
