"""``botfleet exchange-sim``: the command and its flags (docs/exchange_sim.md)."""

from __future__ import annotations

from pathlib import Path

import typer


def _start_ms(value: str | None) -> int | None:
    if not value:
        return None
    if value.isdigit():
        return int(value)
    from datetime import UTC, datetime

    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def register(app: typer.Typer) -> None:
    @app.command("exchange-sim")
    def exchange_sim(
        host: str = typer.Option("127.0.0.1", help="address to listen on"),
        port: int | None = typer.Option(
            None,
            help="port for REST, streams and the WS API "
            "[default: shared.binance.endpoints.SIM_DEFAULT_PORT, 9100]",
        ),
        symbols: str = typer.Option(
            "", help="comma-separated symbols (default BTCUSDT,ETHUSDT; with --replay: its files)"
        ),
        speed: float = typer.Option(1.0, help="exchange clock speed: N x wall time"),
        seed: int = typer.Option(7, help="seed of the price paths and fault dice"),
        api_key: str = typer.Option("", help="HMAC API key (generated if omitted)"),
        api_secret: str = typer.Option("", help="HMAC API secret (generated if omitted)"),
        ed25519_public_key: str = typer.Option(
            "", help="Ed25519 public key (PEM file path or PEM text) to register"
        ),
        ed25519_api_key: str = typer.Option("", help="API key of the Ed25519 public key"),
        extra_key: list[str] = typer.Option(
            [], "--extra-key", help="another HMAC key pair of the account, KEY:SECRET (repeatable)"
        ),
        replay: Path | None = typer.Option(None, help="folder of <SYMBOL>-<interval>.csv klines"),
        balances: str = typer.Option("USDT=100000,BTC=1,ETH=10", help="ASSET=AMOUNT,..."),
        start_time: str | None = typer.Option(
            None, help="exchange start time (epoch ms or ISO 8601); default now"
        ),
        history_days: int = typer.Option(1000, help="days of candles before the start"),
        weight_limit: int = typer.Option(6000, help="REQUEST_WEIGHT per exchange minute"),
        orders_per_10s: int = typer.Option(100, help="ORDERS per 10 exchange seconds"),
        orders_per_day: int = typer.Option(200_000, help="ORDERS per exchange day"),
        ban_after: int = typer.Option(10, help="429s in a minute before a 418 ban"),
        kline_update_ms: int = typer.Option(1000, help="exchange ms between kline updates"),
        ws_ping_interval: float = typer.Option(20.0, help="seconds between server pings"),
        shutdown_grace_s: float = typer.Option(
            3.0, help="serverShutdown fault: wall seconds from the notice to the close"
        ),
        latency_ms: int = typer.Option(0, help="fault: added REST latency"),
        error_rate: float = typer.Option(0.0, help="fault: share of REST requests answered 500"),
        order_unknown_rate: float = typer.Option(
            0.0, help="fault: share of placed orders answered 503 (the order exists)"
        ),
        unknown_mode: str = typer.Option("503", help="fault: '503', '500' or 'timeout'"),
        drop_kline_rate: float = typer.Option(0.0, help="fault: share of kline messages dropped"),
        frozen: str = typer.Option("", help="fault: frozen symbols (comma-separated, * = all)"),
        clock_offset_ms: int = typer.Option(
            0, help="fault: exchange clock offset; timestamps checked against it only"
        ),
        legacy_listen_key: bool = typer.Option(
            False, help="serve the listenKey endpoints Binance retired on 2026-02-20"
        ),
    ) -> None:
        """An offline Binance Spot exchange (REST + WebSocket) for tests and demos."""
        import secrets

        from services.exchange_sim.app import SimOptions, parse_balances, serve
        from services.exchange_sim.faults import FaultConfig
        from services.exchange_sim.replay import ReplayError, load_replay
        from shared.binance.endpoints import SIM_DEFAULT_PORT
        from shared.redaction import register_secret
        from shared.service import run_service
        from shared.settings import Settings, load_settings

        if not api_key or not api_secret:
            api_key = api_key or secrets.token_hex(32)
            api_secret = api_secret or secrets.token_hex(32)
            typer.echo(f"exchange-sim API key: {api_key}\nexchange-sim API secret: {api_secret}")
        register_secret(api_secret)
        extra_keys: list[tuple[str, str]] = []
        for pair in extra_key:
            name, sep, secret = pair.partition(":")
            if not sep or not name or not secret:
                raise typer.BadParameter("--extra-key expects KEY:SECRET")
            register_secret(secret)
            extra_keys.append((name, secret))
        try:
            faults = FaultConfig(
                latency_ms=latency_ms,
                error_rate=error_rate,
                order_unknown_rate=order_unknown_rate,
                unknown_mode=unknown_mode,
                drop_kline_rate=drop_kline_rate,
                frozen=[s.strip() for s in frozen.split(",") if s.strip()],
                clock_offset_ms=clock_offset_ms,
            )
            opts = SimOptions(
                host=host,
                port=SIM_DEFAULT_PORT if port is None else port,
                symbols=[s.strip().upper() for s in symbols.split(",") if s.strip()]
                or ([] if replay else ["BTCUSDT", "ETHUSDT"]),
                speed=speed,
                seed=seed,
                api_key=api_key,
                api_secret=api_secret,
                ed25519_public_key=ed25519_public_key,
                ed25519_api_key=ed25519_api_key,
                extra_keys=extra_keys,
                replay=replay,
                balances=parse_balances(balances),
                start_ms=_start_ms(start_time),
                history_days=history_days,
                weight_limit=weight_limit,
                orders_per_10s=orders_per_10s,
                orders_per_day=orders_per_day,
                ban_after=ban_after,
                kline_update_ms=kline_update_ms,
                ws_ping_interval=ws_ping_interval,
                shutdown_grace_s=shutdown_grace_s,
                legacy_listen_key=legacy_listen_key,
                faults=faults,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        if shutdown_grace_s < 0:
            raise typer.BadParameter("--shutdown-grace-s must be >= 0")
        if speed <= 0:
            raise typer.BadParameter("--speed must be > 0")
        if replay is not None:
            # A malformed file is one line naming the file and line, exit 2 (no traceback).
            try:
                opts.replayed = load_replay(replay, opts.symbols or None)
            except ReplayError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
        settings = load_settings(Settings)
        raise typer.Exit(run_service("exchange-sim", settings, lambda stop: serve(opts, stop)))
