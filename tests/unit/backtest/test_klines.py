"""Kline files: every format read back as written; the first bad row named, whatever it is."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.klines import KlineError, read_klines

STEP = 60_000
T0 = 1_700_000_040_000 // STEP * STEP

prices = st.decimals(min_value="0.01", max_value="100000", places=2)
candle = st.tuples(prices, prices, st.decimals(min_value="0", max_value="1000", places=3))


def rows(
    draws: list[tuple[Decimal, Decimal, Decimal]],
) -> list[tuple[int, str, str, str, str, str]]:
    out = []
    for i, (a, b, v) in enumerate(draws):
        o, c = str(a), str(b)
        h, lo = str(max(a, b)), str(min(a, b))
        out.append((T0 + i * STEP, o, h, lo, c, str(v)))
    return out


def write(path: Path, data: list[tuple[int, str, str, str, str, str]], fmt: str) -> None:
    if fmt == "json":
        path.write_text(
            json.dumps(
                [
                    [t, float(o), float(h), float(lo), float(c), float(v)]
                    for t, o, h, lo, c, v in data
                ]
            )
        )
        return
    with path.open("w") as fh:
        if fmt == "csv12":
            fh.write("open_time,open,high,low,close,volume,close_time,qv,n,tb,tbq,ignore\n")
        for t, o, h, lo, c, v in data:
            tail = f",{t + STEP - 1},0,1,0,0,0" if fmt == "csv12" else ""
            fh.write(f"{t},{o},{h},{lo},{c},{v}{tail}\n")


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    draws=st.lists(candle, min_size=1, max_size=40), fmt=st.sampled_from(["csv12", "csv6", "json"])
)
def test_every_format_reads_back_what_was_written(
    tmp_path: Path, draws: list[tuple[Decimal, Decimal, Decimal]], fmt: str
) -> None:
    data = rows(draws)
    path = tmp_path / f"k.{fmt}"
    write(path, data, fmt)
    got = list(read_klines(path, "1m"))
    assert [k.open_time for k in got] == [r[0] for r in data]
    assert [k.close_time for k in got] == [r[0] + STEP - 1 for r in data]
    assert [(k.open, k.high, k.low, k.close) for k in got] == [
        tuple(float(x) for x in r[1:5]) for r in data
    ]
    if fmt != "json":
        assert [k.text for k in got] == [r[1:5] for r in data]


@SETTINGS
@given(
    draws=st.lists(candle, min_size=3, max_size=30),
    fault=st.sampled_from(["duplicate", "older", "gap"]),
    at=st.integers(min_value=1),
    fmt=st.sampled_from(["csv12", "csv6"]),
)
def test_the_first_offending_line_is_named(
    tmp_path: Path, draws: list[tuple[Decimal, Decimal, Decimal]], fault: str, at: int, fmt: str
) -> None:
    data = rows(draws)
    i = 1 + at % (len(data) - 1)  # the row made bad (never the first)
    t = data[i][0]
    bad = {"duplicate": t - STEP, "older": t - 2 * STEP, "gap": t + STEP}[fault]
    if fault == "older" and i == 1:
        bad = t - 3 * STEP
    data[i] = (bad, *data[i][1:])
    path = tmp_path / "k.csv"
    write(path, data, fmt)
    line = i + 1 + (1 if fmt == "csv12" else 0)  # 1-based, after the header
    with pytest.raises(KlineError, match=rf"k\.csv:{line}: ") as err:
        list(read_klines(path, "1m"))
    word = {"duplicate": "duplicate", "older": "out of order", "gap": "gap"}[fault]
    if not (fault == "older" and bad == data[i - 1][0]):
        assert word in str(err.value)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("x,1,2,0.5,1.5,3", "open time is not a number"),
        (f"{T0 + STEP},1,2,0.5,abc,3", "not a number"),
        (f"{T0 + STEP},1,2,0.5,nan,3", "not a finite"),
        (f"{T0 + STEP},1,2,1.2,1.5,3", "low/high"),
        (f"{T0 + STEP},1,2,0.5", "expected 6 or 12 columns"),
    ],
)
def test_bad_rows_are_refused_with_their_line(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "k.csv"
    path.write_text(f"{T0},1,2,0.5,1.5,3\n{line}\n")
    with pytest.raises(KlineError, match=rf"k\.csv:2: .*{why}"):
        list(read_klines(path, "1m"))


def test_microsecond_open_times_are_read_as_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text(f"{T0 * 1000},1,2,0.5,1.5,3\n{(T0 + STEP) * 1000},1,2,0.5,1.5,3\n")
    assert [k.open_time for k in read_klines(path, "1m")] == [T0, T0 + STEP]


def test_a_file_of_another_interval_is_a_gap_at_its_second_row(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text(f"{T0},1,2,0.5,1.5,3\n{T0 + 5 * STEP},1,2,0.5,1.5,3\n")
    with pytest.raises(KlineError, match=r"k\.csv:2: gap of 4 1m"):
        list(read_klines(path, "1m"))


@pytest.mark.parametrize("text", ["", "open_time,open,high,low,close,volume\n", "[]"])
def test_a_file_without_candles_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "k.csv"
    path.write_text(text)
    with pytest.raises(KlineError, match="no kline rows"):
        list(read_klines(path, "1m"))
