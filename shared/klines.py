"""Kline files read as a stream, checked row by row: what the backtester and the
simulator's ``--replay`` play back (one reader, so both accept the same files).

Formats (``fmt="auto"`` picks one from the file):

- Binance CSV, 12 columns (data.binance.vision; open times in ms, or µs as the 2025+
  archives use), with or without a header line;
- 6-column CSV ``open_time,open,high,low,close,volume`` (what freqtrade and ccxt export);
- freqtrade JSON: ``[[open_time_ms, open, high, low, close, volume], ...]``;
- Binance's monthly kline zip files (``BTCUSDT-1m-2024-01.zip``: one 12-column CSV inside).

Rows must follow each other at exactly one interval: a duplicate, an older row or a
gap stops the read with :class:`KlineError` naming the file and the first offending
line (``allow_gaps`` lets gaps through: the exchange's own archives have them, from its
maintenance windows). CSV and zip are streamed (memory flat in the file's length);
prices stay text until a fill needs them as ``Decimal``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from shared.binance.intervals import interval_ms


class KlineError(ValueError):
    """A kline file the backtest refuses (names the file and line)."""


class Kline(NamedTuple):
    """One closed candle: times in ms, prices and volume as floats (for the strategy)
    and the prices as the file wrote them (``text``: open, high, low, close; made
    ``Decimal`` only where a fill or an exit needs them)."""

    line: int
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    text: tuple[str, str, str, str]
    volume_text: str = "0"
    # quote volume, trades, taker buy base, taker buy quote: 12-column files only
    extra: tuple[str, str, str, str] | None = None


FORMATS = ("csv", "json", "zip")


def detect_format(path: Path) -> str:
    """``zip`` by its magic bytes, ``json`` when the file starts with ``[``, else ``csv``."""
    with path.open("rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "json" if head.lstrip().startswith(b"[") else "csv"


_INF = float("inf")


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise KlineError(f"{where}: not a number: {text!r}") from None
    if not 0 <= value < _INF:
        raise KlineError(f"{where}: not a finite non-negative number: {text!r}")
    return value


def _rows_csv(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open() as fh:
        yield from _csv_lines(fh, path.name)


def _rows_zip(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise KlineError(f"{path.name}: not a zip file: {exc}") from None
    with archive:
        members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
        if len(members) != 1:
            raise KlineError(f"{path.name}: expected one .csv inside, found {len(members)}")
        with archive.open(members[0]) as raw:
            yield from _csv_lines(
                io.TextIOWrapper(raw, encoding="utf-8"), f"{path.name}!{members[0]}"
            )


def _csv_lines(fh: Iterator[str], name: str) -> Iterator[tuple[int, list[str]]]:
    """Rows of a CSV text stream; ``name`` is what errors call the file."""
    for lineno, raw in enumerate(fh, 1):
        line = raw.strip()
        if not line:
            continue
        row = line.split(",")
        if not row[0].strip().lstrip("-").isdigit():
            if lineno == 1:
                continue  # header
            raise KlineError(f"{name}:{lineno}: open time is not a number: {row[0]!r}")
        if len(row) not in (6, 12):
            raise KlineError(f"{name}:{lineno}: expected 6 or 12 columns, got {len(row)}")
        yield lineno, row


def _rows_json(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise KlineError(f"{path.name}: not JSON: {exc}") from None
    if not isinstance(data, list):
        raise KlineError(f"{path.name}: expected a JSON array of candles")
    for index, item in enumerate(data, 1):
        if not isinstance(item, list) or len(item) < 6:
            raise KlineError(f"{path.name}: candle {index}: expected [time, o, h, l, c, v]")
        try:
            values = [repr(float(x)) for x in item[1:6]]
        except (TypeError, ValueError):
            raise KlineError(
                f"{path.name}: candle {index}: not a number in {item[1:6]!r}"
            ) from None
        yield index, [str(item[0]), *values]


def read_klines(
    path: Path, interval: str, fmt: str = "auto", *, allow_gaps: bool = False
) -> Iterator[Kline]:
    """The file's candles, oldest first, each exactly ``interval`` after the last (or
    any whole number of intervals with ``allow_gaps``)."""
    step = interval_ms(interval)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise KlineError(f"unknown kline format {fmt!r} ({', '.join(FORMATS)})")
    rows = {"json": _rows_json, "zip": _rows_zip, "csv": _rows_csv}[fmt](path)
    what = "candle" if fmt == "json" else "line"
    last: int | None = None
    count = 0
    for lineno, row in rows:
        where = f"{path.name}: {what} {lineno}" if fmt == "json" else f"{path.name}:{lineno}"
        try:
            open_time = int(row[0])
        except ValueError:
            raise KlineError(f"{where}: open time is not a number: {row[0]!r}") from None
        if open_time > 10**14:  # microseconds
            open_time //= 1000
        try:
            o, h, lo, c, v = (
                float(row[1]),
                float(row[2]),
                float(row[3]),
                float(row[4]),
                float(row[5]),
            )
        except ValueError:
            for i in (1, 2, 3, 4, 5):
                _number(row[i], where)
            raise
        # one chained test for the usual row; nan fails every comparison
        if not (0 <= v < _INF and h < _INF and 0 < lo <= o <= h and lo <= c <= h):
            for i in (1, 2, 3, 4, 5):
                _number(row[i], where)
            raise KlineError(f"{where}: low/high do not contain open and close (or a price <= 0)")
        if (
            last is not None
            and open_time != last + step
            and not (allow_gaps and open_time > last and (open_time - last) % step == 0)
        ):
            if open_time == last:
                raise KlineError(f"{where}: duplicate candle (open time {open_time})")
            if open_time < last:
                raise KlineError(f"{where}: out of order (open time {open_time} before {last})")
            missing = (open_time - last) // step - 1
            raise KlineError(
                f"{where}: gap of {missing} {interval} candle(s) before open time {open_time} "
                f"(or the file is not {interval})"
            )
        if open_time % step and interval not in ("1w", "1M"):
            raise KlineError(f"{where}: open time {open_time} is not on a {interval} boundary")
        last = open_time
        count += 1
        text = (row[1].strip(), row[2].strip(), row[3].strip(), row[4].strip())
        extra = (
            (row[7].strip(), row[8].strip(), row[9].strip(), row[10].strip())
            if len(row) == 12
            else None
        )
        yield Kline(
            lineno, open_time, open_time + step - 1, o, h, lo, c, v, text, row[5].strip(), extra
        )
    if not count:
        raise KlineError(f"{path.name}: no kline rows")
