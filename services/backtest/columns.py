"""Candles as columns: what the backtest engine reads by index, a chunk at a time.

A :class:`Columns` holds up to ``CHUNK`` consecutive closed candles as Python lists of
floats (open, high, low, close, volume) and ints (open times), plus a way to get the
prices as the file wrote them (``text(i)``, made ``Decimal`` only where a fill or an
exit needs them). The engine streams chunks, so memory stays flat in the file's length.

:func:`read_columns` reads a CSV or zip kline file with numpy's C parser and checks each
chunk with the rules of ``shared.klines.read_klines``, vectorised. Any chunk those fast
checks do not pass as a usual one (a header past line 1, a blank line, a row of another
width, a number Python reads but numpy does not, a gap, a duplicate, a price out of its
candle, a weekly or monthly interval) is handed to ``read_klines`` itself from its first
row on: the rows accepted and the errors raised (with the file's line) are exactly its
own. JSON files always go through ``read_klines``. :func:`from_klines` chunks any stream
of :class:`~shared.klines.Kline`.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from shared.binance.intervals import interval_ms
from shared.klines import FORMATS, Kline, KlineError, detect_format, read_klines
from shared.strategies.bars import Bars
from shared.strategies.indicators import FloatArray

CHUNK = 16_384
_ROW = np.dtype(
    [("t", np.int64), ("o", np.float64), ("h", np.float64), ("l", np.float64),
     ("c", np.float64), ("v", np.float64)]
)  # fmt: skip
_INF = float("inf")


@dataclass(slots=True)
class Columns:
    """Consecutive closed candles, oldest first (every list the same length)."""

    open_time: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    step_ms: int
    # the rows as the file wrote them (CSV lines), or the four price texts of each row
    lines: Sequence[str] | None = None
    texts: Sequence[tuple[str, str, str, str]] | None = None
    first_line: int = 0  # file line of row 0 (CSV lines only)
    # the same columns as numpy arrays, when the reader has them: open times, then
    # open, high, low, close, volume
    times: npt.NDArray[np.int64] | None = None
    prices: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray] | None = None

    @property
    def size(self) -> int:
        return len(self.open_time)

    def text(self, i: int) -> tuple[str, str, str, str]:
        """Open, high, low and close of row ``i`` as the file wrote them."""
        if self.texts is not None:
            return self.texts[i]
        assert self.lines is not None
        row = self.lines[i].split(",", 5)
        return (row[1].strip(), row[2].strip(), row[3].strip(), row[4].strip())

    def bars(self, n: int) -> Bars:
        """The first ``n`` rows as strategies take them."""
        if self.times is not None and self.prices is not None:
            t = self.times[:n]
            return Bars(t, t + (self.step_ms - 1), *(col[:n] for col in self.prices))
        t = np.array(self.open_time[:n], dtype=np.int64)
        return Bars(
            t, t + (self.step_ms - 1),
            *(np.array(col[:n], dtype=np.float64)
              for col in (self.open, self.high, self.low, self.close, self.volume)),
        )  # fmt: skip

    def kline(self, i: int) -> Kline:
        """Row ``i`` as the kline reader yields it (prices as text and floats)."""
        t = self.open_time[i]
        return Kline(
            self.first_line + i if self.lines is not None else 0,
            t,
            t + self.step_ms - 1,
            self.open[i],
            self.high[i],
            self.low[i],
            self.close[i],
            self.volume[i],
            self.text(i),
        )


def from_klines(klines: Iterable[Kline], size: int | None = None) -> Iterator[Columns]:
    """Chunks of ``klines`` (the stream read_klines yields, or any other)."""
    it = iter(klines)
    while batch := list(itertools.islice(it, size or CHUNK)):
        first = batch[0]
        step = first.close_time + 1 - first.open_time
        _, t, _, o, h, lo, c, v, texts, *_ = zip(*batch, strict=True)
        yield Columns(list(t), list(o), list(h), list(lo), list(c), list(v), step, texts=texts)


def chunked(candles: Iterable[Kline | Columns]) -> Iterator[Columns]:
    """``candles`` as chunks: column chunks as they are, klines chunked."""
    it = iter(candles)
    first = next(it, None)
    if first is None:
        return
    if isinstance(first, Columns):
        yield first
        yield from cast(Iterator[Columns], it)
    else:
        yield from from_klines(itertools.chain([cast(Kline, first)], cast(Iterator[Kline], it)))


def read_columns(
    path: Path, interval: str, fmt: str = "auto", *, allow_gaps: bool = False, chunk: int = CHUNK
) -> Iterator[Columns]:
    """The file's candles in chunks; accepts and refuses what ``read_klines`` does."""
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise KlineError(f"unknown kline format {fmt!r} ({', '.join(FORMATS)})")
    step = interval_ms(interval)
    if fmt == "json" or interval in ("1w", "1M"):
        yield from from_klines(read_klines(path, interval, fmt, allow_gaps=allow_gaps), chunk)
        return
    done = 0  # rows yielded
    last: int | None = None
    with _open_text(path) as fh:
        for lineno, lines in _line_chunks(fh, chunk):
            cols = _parse(lines, lineno, step, last)
            if cols is None:
                # read_klines from the first row not yet yielded: its rows and errors
                rest = read_klines(path, interval, fmt, allow_gaps=allow_gaps)
                yield from from_klines(itertools.islice(rest, done, None), chunk)
                return
            done += cols.size
            last = cols.open_time[-1]
            yield cols
    if not done:
        raise KlineError(f"{path.name}: no kline rows")


def _open_text(path: Path) -> io.TextIOBase:
    with path.open("rb") as fh:
        zipped = fh.read(4) == b"PK\x03\x04"
    if not zipped:
        return path.open()
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise KlineError(f"{path.name}: not a zip file: {exc}") from None
    members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
    if len(members) != 1:
        archive.close()
        raise KlineError(f"{path.name}: expected one .csv inside, found {len(members)}")
    # closing the wrapper closes the member; the archive goes with the last reference
    return io.TextIOWrapper(archive.open(members[0]), encoding="utf-8")


def _line_chunks(fh: io.TextIOBase, size: int) -> Iterator[tuple[int, list[str]]]:
    """(file line of the first, lines) of up to ``size`` lines; a header on line 1 is
    skipped (the rule of read_klines: line 1 whose first field is not a number)."""
    lineno = 1
    first = True
    while lines := list(itertools.islice(fh, size)):
        if first:
            first = False
            head = lines[0].split(",", 1)[0].strip().lstrip("-")
            if lines[0].strip() and not head.isdigit():
                lines = lines[1:]
                lineno += 1
                if not lines:
                    continue
        yield lineno, lines
        lineno += len(lines)


def _parse(lines: list[str], lineno: int, step: int, last: int | None) -> Columns | None:
    """``lines`` as columns, or None when any row is not a usual one (see the module)."""
    widths = set(map(str.count, lines, itertools.repeat(",")))
    if widths != {5} and widths != {11}:
        return None
    try:
        rows = np.loadtxt(lines, delimiter=",", usecols=range(6), comments=None, dtype=_ROW)
    except ValueError:
        return None
    rows = np.atleast_1d(rows)
    if rows.size != len(lines):
        return None
    t, o, h, lo, c, v = (rows[name] for name in _ROW.names or ())
    t = np.where(t > 10**14, t // 1000, t)  # microseconds
    with np.errstate(invalid="ignore"):
        prices_ok = (v >= 0) & (v < _INF) & (h < _INF) & (lo > 0) & (lo <= o) & (o <= h)
        prices_ok &= (lo <= c) & (c <= h)
    if not prices_ok.all() or (t % step).any():
        return None
    if (last is not None and t[0] != last + step) or (np.diff(t) != step).any():
        return None
    return Columns(
        t.tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist(), step,
        lines=lines, first_line=lineno, times=t, prices=(o, h, lo, c, v),
    )  # fmt: skip
