"""``--replay PATH``: a folder of kline CSV files played back as the market.

Format (docs/exchange_sim.md): one file per symbol and interval named
``<SYMBOL>-<interval>.csv`` (optionally followed by anything, e.g.
``BTCUSDT-1m-2024-01.csv`` as data.binance.vision names them), rows as Binance's kline
arrays: ``open_time,open,high,low,close,volume,close_time,quote_volume,trades,
taker_buy_base_volume,taker_buy_quote_volume,ignore``; an optional header line;
open times in ms (or µs, as the 2025+ archives use). For each symbol the file with
the finest interval is played; its coarser siblings are ignored, since every interval
is derived from the one path.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from services.exchange_sim.market import (
    QUOTE_UNIT,
    ReplayCandle,
    ReplaySource,
    SymbolSpec,
    spec_for,
)
from shared.binance.intervals import INTERVALS, interval_ms


class ReplayError(ValueError):
    """A replay folder or file that cannot be played (names the file and line)."""


def _units(value: str, unit: Decimal, where: str) -> int:
    try:
        scaled = Decimal(value) / unit
    except ArithmeticError as exc:
        raise ReplayError(f"{where}: not a number: {value!r}") from exc
    return int(scaled.to_integral_value())


def _decimals(value: str) -> int:
    _, _, frac = value.partition(".")
    return len(frac.rstrip("0"))


def load_candles(path: Path, symbol: str, interval: str) -> tuple[SymbolSpec, list[ReplayCandle]]:
    """The file's candles, and the symbol's spec with the tick the file's prices use
    (volumes are kept to 1e-8, as the archives print them)."""
    seconds = interval_ms(interval) // 1000
    rows: list[tuple[str, list[str]]] = []
    with path.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or not row[0].strip().lstrip("-").isdigit():
                continue  # header or blank
            where = f"{path.name}:{lineno}"
            if len(row) < 11:
                raise ReplayError(f"{where}: expected 12 columns, got {len(row)}")
            rows.append((where, row))
    if not rows:
        raise ReplayError(f"{path}: no kline rows")
    base = spec_for(symbol)
    price_decimals = max(_decimals(row[i]) for _, row in rows for i in (1, 2, 3, 4))
    tick = min(base.tick, Decimal(1).scaleb(-min(price_decimals, 8)))
    try:
        first_close = float(rows[0][1][4])
    except ValueError as exc:
        raise ReplayError(f"{rows[0][0]}: not a number: {rows[0][1][4]!r}") from exc
    spec = replace(base, tick=tick, base_price=first_close, volume_unit=QUOTE_UNIT)
    candles: list[ReplayCandle] = []
    for where, row in rows:
        open_ms = int(row[0])
        if open_ms > 10**14:  # microseconds
            open_ms //= 1000
        o, h, lo, c = (_units(row[i], spec.tick, where) for i in (1, 2, 3, 4))
        candles.append(
            ReplayCandle(
                open_s=open_ms // 1000,
                seconds=seconds,
                o=o,
                h=max(h, o, c),
                l=min(lo, o, c),
                c=c,
                v=_units(row[5], QUOTE_UNIT, where),
                q=_units(row[7], QUOTE_UNIT, where),
                tb=_units(row[9], QUOTE_UNIT, where),
                tbq=_units(row[10], QUOTE_UNIT, where),
                n=int(row[8]),
            )
        )
    return spec, candles


def load_replay(folder: Path, symbols: list[str] | None = None) -> dict[str, ReplaySource]:
    """One :class:`ReplaySource` per symbol found in ``folder`` (or only ``symbols``)."""
    if not folder.is_dir():
        raise ReplayError(f"--replay {folder}: not a directory")
    finest: dict[str, tuple[int, str, Path]] = {}
    for path in sorted(folder.glob("*.csv")):
        parts = path.stem.split("-")
        if len(parts) < 2 or parts[1] not in INTERVALS or parts[1] == "1M":
            continue
        symbol, interval = parts[0].upper(), parts[1]
        rank = interval_ms(interval)
        if symbol not in finest or rank < finest[symbol][0]:
            finest[symbol] = (rank, interval, path)
    wanted = [s.upper() for s in symbols] if symbols else sorted(finest)
    missing = [s for s in wanted if s not in finest]
    if missing:
        raise ReplayError(f"--replay {folder}: no <SYMBOL>-<interval>.csv for {', '.join(missing)}")
    sources = {}
    for symbol in wanted:
        _, interval, path = finest[symbol]
        spec, candles = load_candles(path, symbol, interval)
        sources[symbol] = ReplaySource(spec, candles)
    return sources
