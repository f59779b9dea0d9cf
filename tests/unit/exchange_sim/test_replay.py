"""``--replay``: kline CSV files played back as the market."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from services.exchange_sim.app import SimOptions, build_exchange
from services.exchange_sim.replay import ReplayError, load_replay

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "replay"


def _rows(name: str) -> list[list[str]]:
    with (FIXTURES / name).open() as fh:
        return [r for r in csv.reader(fh) if r and r[0].isdigit()]


def test_every_file_candle_is_served_back_exactly() -> None:
    ex = build_exchange(SimOptions(replay=FIXTURES, symbols=[], api_key="k", api_secret="s"))
    assert set(ex.markets) == {"BTCUSDT", "ETHUSDT"}
    for symbol, name, interval in (
        ("BTCUSDT", "BTCUSDT-1m.csv", "1m"),
        ("ETHUSDT", "ETHUSDT-5m.csv", "5m"),
    ):
        rows = _rows(name)
        market = ex.markets[symbol]
        end_ms = int(rows[-1][6]) + 3_600_000  # after the file: every candle closed
        served = market.klines(interval, end_ms, start_ms=int(rows[0][0]), limit=1000)
        assert len(served) >= len(rows)
        for got, want in zip(served, rows, strict=False):
            assert got[0] == int(want[0]) and got[6] == int(want[6])
            assert [Decimal(x) for x in got[1:6]] == [Decimal(x) for x in want[1:6]]
            assert Decimal(got[7]) == Decimal(want[7]) and got[8] == int(want[8])
    # coarser intervals are aggregates of the replayed ones
    btc = ex.markets["BTCUSDT"]
    rows = _rows("BTCUSDT-1m.csv")
    hour = btc.klines("1h", int(rows[-1][6]) + 1, start_ms=int(rows[0][0]), limit=1)[0]
    assert Decimal(hour[2]) == max(Decimal(r[2]) for r in rows[:60])
    assert Decimal(hour[5]) == sum(Decimal(r[5]) for r in rows[:60])


def test_the_clock_starts_inside_the_file_with_history_before_it() -> None:
    ex = build_exchange(
        SimOptions(replay=FIXTURES, symbols=["BTCUSDT"], api_key="k", api_secret="s")
    )
    rows = _rows("BTCUSDT-1m.csv")
    assert int(rows[0][0]) < ex.clock.start_ms < int(rows[-1][6])
    history = ex.markets["BTCUSDT"].klines("1m", ex.clock.start_ms, limit=1000)
    assert 60 <= len(history) < len(rows)


def test_missing_symbols_and_bad_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="DOGEUSDT"):
        load_replay(FIXTURES, ["DOGEUSDT"])
    with pytest.raises(ReplayError, match="not a directory"):
        load_replay(tmp_path / "nope")
    (tmp_path / "BTCUSDT-1m.csv").write_text("1704067200000,1,2\n")
    with pytest.raises(ReplayError, match=r"BTCUSDT-1m\.csv:1"):
        load_replay(tmp_path)


def _ohlcv(ex_market: object, rows: list[list[str]]) -> list[list[Decimal]]:
    served = ex_market.klines(  # type: ignore[attr-defined]
        "1m", int(rows[-1][6]) + 3_600_000, start_ms=int(rows[0][0]), limit=1000
    )
    return [[Decimal(x) for x in k[1:6]] for k in served[: len(rows)]]


@pytest.mark.parametrize("fmt", ["csv6", "json", "zip"])
def test_every_kline_format_replays_the_same_candles(tmp_path: Path, fmt: str) -> None:
    """The 6-column export of freqtrade/ccxt, freqtrade's JSON and Binance's monthly zip
    give the same OHLCV as the 12-column file they were made from."""
    import json
    import zipfile

    rows = _rows("BTCUSDT-1m.csv")
    if fmt == "csv6":
        lines = ["open_time,open,high,low,close,volume"] + [",".join(r[:6]) for r in rows]
        (tmp_path / "BTCUSDT-1m.csv").write_text("\n".join(lines) + "\n")
    elif fmt == "json":
        data = [[int(r[0]), *(float(x) for x in r[1:6])] for r in rows]
        (tmp_path / "BTCUSDT-1m.json").write_text(json.dumps(data))
    else:
        with zipfile.ZipFile(tmp_path / "BTCUSDT-1m-2024-01.zip", "w") as archive:
            archive.write(FIXTURES / "BTCUSDT-1m.csv", "BTCUSDT-1m-2024-01.csv")
    want = build_exchange(
        SimOptions(replay=FIXTURES, symbols=["BTCUSDT"], api_key="k", api_secret="s")
    )
    got = build_exchange(SimOptions(replay=tmp_path, symbols=[], api_key="k", api_secret="s"))
    assert set(got.markets) == {"BTCUSDT"}
    assert _ohlcv(got.markets["BTCUSDT"], rows) == _ohlcv(want.markets["BTCUSDT"], rows)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("BTCUSDT-1m.csv", "1704067200000,1,2,0.5,1.5,3\n1704067200000,1,2,0.5,1.5,3\n", ":2"),
        ("BTCUSDT-1m.csv", "1704067200000,1,2,0.5,1.5,3\n1704067260000,1,x,0.5,1.5,3\n", ":2"),
        ("BTCUSDT-1m.json", '[[1704067200000, 1, 2, 0.5, 1.5, 3], [1704067260000, "a"]]', "2"),
    ],
)
def test_a_malformed_file_is_named_with_its_line(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ReplayError, match=rf"{name.replace('.', '[.]')}.*{where}"):
        load_replay(tmp_path)


def test_the_simulator_refuses_a_malformed_replay_in_one_line_with_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "BTCUSDT-1m.csv").write_text(
        "1704067200000,1,2,0.5,1.5,3\n1704067140000,1,2,0.5,1.5,3\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services",
            "exchange-sim",
            "--port",
            "0",
            "--replay",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "BTCUSDT-1m.csv:2" in lines[0] and "out of order" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
