"""``--replay PATH``: a folder of kline files played back as the market.

Format (docs/exchange_sim.md): one file per symbol and interval named
``<SYMBOL>-<interval>.<csv|json|zip>`` (optionally with anything after the interval,
e.g. ``BTCUSDT-1m-2024-01.zip`` as data.binance.vision names its monthly archives).
Every format :mod:`shared.klines` reads is accepted: Binance's 12-column CSV, the
6-column ``open_time,open,high,low,close,volume`` export of freqtrade and ccxt,
freqtrade's JSON and Binance's monthly zips. Files without the 12 columns' extra fields
get a quote volume of volume * close, half of each volume as taker buys and one trade
per candle. For each symbol the file with the finest interval is played; its coarser
siblings are ignored, since every interval is derived from the one path. A malformed
file is a :class:`ReplayError` naming the file and the line.
"""

from __future__ import annotations

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
from shared.klines import Kline, KlineError, read_klines

SUFFIXES = (".csv", ".json", ".zip")


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
    try:
        rows: list[Kline] = list(read_klines(path, interval, allow_gaps=True))
    except KlineError as exc:
        raise ReplayError(str(exc)) from None
    base = spec_for(symbol)
    price_decimals = max(_decimals(text) for k in rows for text in k.text)
    tick = min(base.tick, Decimal(1).scaleb(-min(price_decimals, 8)))
    spec = replace(base, tick=tick, base_price=rows[0].close, volume_unit=QUOTE_UNIT)
    candles: list[ReplayCandle] = []
    for k in rows:
        where = f"{path.name}:{k.line}"
        o, h, lo, c = (_units(text, spec.tick, where) for text in k.text)
        volume = Decimal(k.volume_text)
        if k.extra is not None:
            quote, trades, taker, taker_quote = k.extra
            q, tb, tbq = (_units(x, QUOTE_UNIT, where) for x in (quote, taker, taker_quote))
            try:
                n = int(trades)
            except ValueError:
                raise ReplayError(f"{where}: trade count is not a number: {trades!r}") from None
        else:
            quote_volume = volume * Decimal(k.text[3])
            q = _units(str(quote_volume), QUOTE_UNIT, where)
            tb, tbq, n = _units(str(volume / 2), QUOTE_UNIT, where), q // 2, 1
        candles.append(
            ReplayCandle(
                open_s=k.open_time // 1000,
                seconds=seconds,
                o=o,
                h=max(h, o, c),
                l=min(lo, o, c),
                c=c,
                v=_units(k.volume_text, QUOTE_UNIT, where),
                q=q,
                tb=tb,
                tbq=tbq,
                n=n,
            )
        )
    return spec, candles


def load_replay(folder: Path, symbols: list[str] | None = None) -> dict[str, ReplaySource]:
    """One :class:`ReplaySource` per symbol found in ``folder`` (or only ``symbols``)."""
    if not folder.is_dir():
        raise ReplayError(f"--replay {folder}: not a directory")
    finest: dict[str, tuple[int, str, Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES):
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
        raise ReplayError(
            f"--replay {folder}: no <SYMBOL>-<interval>.csv|json|zip for {', '.join(missing)}"
        )
    sources = {}
    for symbol in wanted:
        _, interval, path = finest[symbol]
        spec, candles = load_candles(path, symbol, interval)
        sources[symbol] = ReplaySource(spec, candles)
    return sources
