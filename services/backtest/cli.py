"""``botfleet backtest CONFIG KLINES`` (or ``--from/--to``): one bot config over a kline
file or a range fetched over REST (cached on disk, services/backtest/fetch.py), in this
process.

The config is the JSON body ``POST /api/v1/bots`` takes, validated by the same model
(``BotConfig``); its errors are printed as the API words them (``field: message``).
Exit codes: 0 done, 2 refused input (config, kline file, rules file).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from services.backtest.columns import Columns
    from shared.klines import Kline
    from shared.strategies.config import BotConfig

HELP = "Run one bot config over a kline file with the live code (docs/backtest.md)."


def _fail(message: str) -> NoReturn:
    typer.echo(f"backtest: {message}", err=True)
    raise typer.Exit(2)


def _progress(klines: Iterator[Kline] | Iterator[Columns]) -> Iterator[Kline | Columns]:
    """The candles (or column chunks), with a progress line on the terminal every
    65,536 candles."""
    from datetime import UTC, datetime

    from services.backtest.columns import Columns

    n = 0
    for k in klines:
        size, t = (k.size, k.open_time[-1]) if isinstance(k, Columns) else (1, k.open_time)
        if (n + size) >> 16 > n >> 16:
            at = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            sys.stderr.write(f"\rbacktest: {n + size:,} candles, at {at}")
            sys.stderr.flush()
        n += size
        yield k
    if n > 0xFFFF:
        sys.stderr.write("\r" + " " * 60 + "\r")


def _source(
    bot: BotConfig,
    klines: Path | None,
    fmt: str,
    start: str | None,
    end: str | None,
    rest_url: str | None,
    cache_dir: Path | None,
) -> Iterator[Kline] | Iterator[Columns]:
    """The candles: of the file, or of the range fetched over REST (exactly one given)."""
    from services.backtest.columns import read_columns

    if klines is not None:
        if start is not None or end is not None:
            _fail("give a kline file or --from/--to, not both")
        if not klines.is_file():
            _fail(f"{klines}: no such file")
        return read_columns(klines, bot.interval, fmt)  # read_klines' rules, faster
    if start is None:
        _fail("give a kline file or a range (--from 2025-01-01 [--to 2025-03-01])")
    import time

    import httpx

    from services.backtest.fetch import FetchError, fetch_range
    from shared.backtests import parse_when
    from shared.klines import KlineError
    from shared.logging import configure_logging
    from shared.settings import Settings, SettingsError, load_settings

    configure_logging("backtest", "cli")  # retries and rate-limit waits, on stderr

    try:
        start_ms = parse_when(start or "", "--from")
        end_ms = parse_when(end, "--to") if end is not None else int(time.time() * 1000)
    except ValueError as exc:
        _fail(str(exc))
    if end_ms <= start_ms:
        _fail(f"--to ({end}) must be after --from ({start})")
    if rest_url is None:
        try:
            rest_url = load_settings(Settings).rest_url
        except SettingsError as exc:
            _fail(str(exc))
    try:
        stream, requests = fetch_range(
            rest_url or "", bot.symbol, bot.interval, start_ms, end_ms, cache_dir=cache_dir
        )
    except (FetchError, KlineError, httpx.HTTPError, OSError) as exc:
        _fail(f"fetching klines from {rest_url}: {exc}")
    if requests:
        typer.echo(f"backtest: {requests} klines request(s) to {rest_url}", err=True)
    return stream


def backtest(
    config: Annotated[Path, typer.Argument(help="bot config JSON (the POST /api/v1/bots body)")],
    klines: Annotated[
        Path | None,
        typer.Argument(help="kline file: Binance CSV, 6-column CSV, JSON, zip (or --from/--to)"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="fetch from (UTC date, ISO time or epoch ms), not a file"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="fetch until (exclusive; default: now)")
    ] = None,
    rest_url: Annotated[
        str | None,
        typer.Option(help="exchange REST root (default: the settings', BOTFLEET_BINANCE_*)"),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="kline cache (default $BOTFLEET_KLINES_CACHE or ~/.cache/botfleet/klines)"
        ),
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="symbol rules JSON (SymbolRules or exchangeInfo entry)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | csv | json | zip")] = "auto",
    fee: Annotated[str, typer.Option(help="taker fee rate")] = "0.001",
    slippage: Annotated[str, typer.Option(help="slippage, a fraction of the price")] = "0.0005",
    fee_asset: Annotated[str, typer.Option(help="asset of BUY commissions: quote | base")] = (
        "quote"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Run one bot config over a kline file with the live code (docs/backtest.md)."""
    from pydantic import ValidationError

    from services.backtest.engine import Backtest
    from services.backtest.report import render
    from services.backtest.rules import RulesError, load_rules
    from shared.fills import Costs
    from shared.klines import KlineError
    from shared.strategies.config import BotConfig
    from shared.validation import describe

    try:
        raw = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        _fail(f"{config}: {exc}")
    try:
        bot = BotConfig.model_validate(raw)
    except ValidationError as exc:
        _fail(f"{config}: invalid bot config: {describe(exc)}")
    if fee_asset not in ("quote", "base"):
        _fail(f"--fee-asset must be quote or base, not {fee_asset!r}")
    try:
        costs = Costs(
            taker_fee=Decimal(fee),
            slippage=Decimal(slippage),
            fee_asset="base" if fee_asset == "base" else "quote",
        )
        symbol_rules = load_rules(rules, bot.symbol)
    except (ArithmeticError, RulesError) as exc:
        _fail(str(exc))
    engine = Backtest(bot, symbol_rules, costs)
    stream = _source(bot, klines, fmt, start, end, rest_url, cache_dir)
    try:
        engine.run(_progress(stream) if sys.stderr.isatty() else stream)
    except KlineError as exc:
        _fail(f"refused: {exc}")
    result: dict[str, Any] = engine.summary()
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        typer.echo(render(result))


def backtest_sweep(
    config: Annotated[Path, typer.Argument(help="bot config JSON (the POST /api/v1/bots body)")],
    klines: Annotated[Path, typer.Argument(help="kline file: Binance CSV, 6-column CSV, JSON")],
    grid: Annotated[str, typer.Option(help='JSON: {"param": [values, ...], ...}')],
    rank: Annotated[str, typer.Option(help="figure to rank by (of the fit period)")] = (
        "net_pnl_pct"
    ),
    split: Annotated[
        float | None, typer.Option(help="walk-forward: fraction of the candles to fit on")
    ] = None,
    workers: Annotated[int, typer.Option(help="processes (0: one per core)")] = 0,
    random: Annotated[
        int | None, typer.Option("--random", help="run N points drawn from the grid, not all")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of --random's draw")] = 0,
    rules: Annotated[Path | None, typer.Option(help="symbol rules JSON")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | csv | json | zip")] = "auto",
    fee: Annotated[str, typer.Option(help="taker fee rate")] = "0.001",
    slippage: Annotated[str, typer.Option(help="slippage, a fraction of the price")] = "0.0005",
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Backtest a grid over a bot's strategy parameters across cores, ranked, with an
    optional walk-forward split (docs/backtest.md, "Sweeps")."""
    from services.backtest.rules import RulesError, load_rules
    from services.backtest.sweep import render, sweep
    from shared.fills import Costs
    from shared.klines import KlineError

    try:
        base = json.loads(config.read_text())
        values = json.loads(grid)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    if (
        not isinstance(base, dict)
        or not isinstance(values, dict)
        or not all(isinstance(v, list) and v for v in values.values())
    ):
        _fail('--grid must be a JSON object of non-empty lists: {"param": [values, ...]}')
    if split is not None and not 0 < split < 1:
        _fail("--split must be between 0 and 1")
    try:
        symbol_rules = load_rules(rules, str(base.get("symbol", "")).upper())
        costs = Costs(taker_fee=Decimal(fee), slippage=Decimal(slippage))
        result = sweep(
            base, values, klines, fmt, symbol_rules, costs,
            rank=rank, split=split, workers=workers or None, random=random, seed=seed,
        )  # fmt: skip
    except (ArithmeticError, RulesError, KlineError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        typer.echo(render(result))


def backtest_worker(
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="BOTFLEET_REDIS_URL")] = None,
    instance: Annotated[
        str | None, typer.Option("--instance", help="consumer and health name")
    ] = None,
) -> None:
    """Run the backtest jobs the API queues (POST /api/v1/backtests), one at a time;
    start several for several at once (docs/backtest.md, "Jobs")."""
    from services.backtest.jobs import SERVICE, main
    from services.backtest.settings import WorkerSettings
    from shared.service import run_service
    from shared.settings import SettingsError, load_settings

    try:
        settings = load_settings(WorkerSettings, redis_url=redis_url, instance=instance)
    except SettingsError as exc:
        _fail(str(exc))
    raise typer.Exit(run_service(SERVICE, settings, lambda stop: main(settings, stop)))


def register(app: typer.Typer) -> None:
    app.command("backtest", help=HELP)(backtest)
    app.command("backtest-sweep")(backtest_sweep)
    app.command("backtest-worker")(backtest_worker)
