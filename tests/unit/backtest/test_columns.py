"""The backtester's column reader: the rows, texts and errors of ``read_klines``, in chunks."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

from services.backtest.columns import Columns, from_klines, read_columns
from shared.klines import Kline, KlineError, read_klines

STEP = 60_000
T0 = 1_700_000_040_000 // STEP * STEP


def lines(n: int, seed: int = 1, width: int = 12) -> list[str]:
    rng = random.Random(seed)
    out, price = [], 100.0
    for i in range(n):
        o = price
        c = round(max(1.0, o * (1 + rng.gauss(0, 0.01))), 2)
        h = round(max(o, c) * (1 + abs(rng.gauss(0, 0.004))), 2)
        lo = round(min(o, c) * (1 - abs(rng.gauss(0, 0.004))), 2)
        t = T0 + i * STEP
        tail = f",{t + STEP - 1},0,7,0,0,0" if width == 12 else ""
        out.append(f"{t},{o},{h:.2f},{lo},{c:.2f},{rng.random() * 5:.4f}{tail}\n")
        price = c
    return out


def rows(chunks: list[Columns]) -> list[Kline]:
    return [c.kline(i) for c in chunks for i in range(c.size)]


def same_rows(got: list[Kline], want: list[Kline]) -> None:
    # everything the engine reads: times, floats, the prices' texts
    assert [k[1:9] for k in got] == [k[1:9] for k in want]


@pytest.mark.parametrize("chunk", [1, 7, 64, 65_536])
@pytest.mark.parametrize("width", [6, 12])
def test_the_rows_are_those_of_the_kline_reader(tmp_path: Path, chunk: int, width: int) -> None:
    path = tmp_path / "k.csv"
    header = "open_time,open,high,low,close,volume\n" if width == 6 else ""
    path.write_text(header + "".join(lines(300, width=width)))
    got = list(read_columns(path, "1m", chunk=chunk))
    assert all(c.size <= chunk for c in got)
    assert sum(c.size for c in got) == 300
    same_rows(rows(got), list(read_klines(path, "1m")))
    # the same through the chunker of any kline stream
    same_rows(rows(list(from_klines(read_klines(path, "1m"), chunk))), rows(got))


def test_a_zip_and_microsecond_times_read_as_the_kline_reader(tmp_path: Path) -> None:
    body = "".join(
        f"{int(line.split(',', 1)[0]) * 1000},{line.split(',', 1)[1]}" for line in lines(50)
    )
    path = tmp_path / "BTCUSDT-1m-2024-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1m-2024-01.csv", body)
    got = rows(list(read_columns(path, "1m", chunk=16)))
    assert got[0].open_time == T0
    same_rows(got, list(read_klines(path, "1m")))


@pytest.mark.parametrize(
    "bad",
    [
        "{t},1,2,0.5,abc,3",  # not a number
        "{t},1,2,0.5,nan,3",  # not finite
        "{t},1,2,1.2,1.5,3",  # low above the open
        "{t},1,2,0.5",  # 4 columns
        "{t},1,2,0.5,1.5,3,9",  # 7 columns
        "{dup},1,2,0.5,1.5,3",  # duplicate
        "{old},1,2,0.5,1.5,3",  # out of order
        "{gap},1,2,0.5,1.5,3",  # a gap
        "{off},1,2,0.5,1.5,3",  # not on the interval's boundary
        "1.7e12,1,2,0.5,1.5,3",  # open time not an integer
        "x,1,2,0.5,1.5,3",  # a header past line 1
    ],
)
@pytest.mark.parametrize("at", [1, 15, 16, 17, 40])
def test_a_bad_row_is_refused_as_the_kline_reader_refuses_it(
    tmp_path: Path, bad: str, at: int
) -> None:
    good = lines(60, width=6)
    t = T0 + at * STEP
    good[at] = bad.format(t=t, dup=t - STEP, old=t - 2 * STEP, gap=t + STEP, off=t + 1) + "\n"
    path = tmp_path / "k.csv"
    path.write_text("".join(good))
    with pytest.raises(KlineError) as want:
        list(read_klines(path, "1m"))
    with pytest.raises(KlineError) as got:
        list(read_columns(path, "1m", chunk=16))
    assert str(got.value) == str(want.value)
    assert f"k.csv:{at + 1}: " in str(got.value)


@pytest.mark.parametrize("odd", ["", "{t},1_0,20,0.5,1.5,3", " {t} , 1 ,2,0.5,1.5,3"])
def test_rows_the_kline_reader_accepts_unusual_are_accepted_alike(tmp_path: Path, odd: str) -> None:
    good = lines(40, width=6)
    good.insert(20, odd.format(t=T0 + 20 * STEP) + "\n")
    if odd:
        del good[21]  # the odd row replaces the candle of its time
    path = tmp_path / "k.csv"
    path.write_text("".join(good))
    same_rows(rows(list(read_columns(path, "1m", chunk=8))), list(read_klines(path, "1m")))


def test_gaps_let_through_are_those_of_the_kline_reader(tmp_path: Path) -> None:
    good = lines(30, width=6)
    del good[10:13]
    path = tmp_path / "k.csv"
    path.write_text("".join(good))
    with pytest.raises(KlineError, match="gap of 3"):
        list(read_columns(path, "1m"))
    same_rows(
        rows(list(read_columns(path, "1m", allow_gaps=True, chunk=4))),
        list(read_klines(path, "1m", allow_gaps=True)),
    )


@pytest.mark.parametrize("text", ["", "open_time,open,high,low,close,volume\n"])
def test_a_file_without_candles_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "k.csv"
    path.write_text(text)
    with pytest.raises(KlineError, match="no kline rows"):
        list(read_columns(path, "1m"))
