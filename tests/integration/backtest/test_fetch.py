"""``botfleet backtest CONFIG --from --to``: klines fetched over REST from the simulator
(a real process), paged, cached on disk per month, read back without a request, and
equal to a backtest of the same candles as a file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from services.backtest.fetch import exchange_folder, months
from shared.backtests import parse_when
from tests.support.processes import base_env
from tests.support.sim import SimFactory, sim_factory  # noqa: F401  (fixture)

BOT = {
    "name": "fetch",
    "symbol": "BTCUSDT",
    "interval": "15m",
    "strategy": "rsi",
    "params": {"period": 5, "oversold": 40, "overbought": 60},
    "quote_allocation": "1000",
    "stop_loss_pct": "0.3",
    "take_profit_pct": "0.5",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services", "backtest", *args],
        env=base_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def requests_of(proc: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"(\d+) klines request\(s\)", proc.stderr)
    return int(found.group(1)) if found else 0


def rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines() if line]


def past_months(count: int) -> tuple[str, str]:
    """The ``count`` whole months before the current one, as ``--from`` / ``--to``."""
    now = datetime.now(UTC)
    year, month = now.year, now.month - count
    while month < 1:
        year, month = year - 1, month + 12
    return f"{year:04d}-{month:02d}-01", f"{now.year:04d}-{now.month:02d}-01"


def test_a_range_is_paged_cached_and_read_again_without_the_exchange(
    sim_factory: SimFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    sim = sim_factory()
    config = tmp_path / "bot.json"
    config.write_text(json.dumps(BOT))
    cache = tmp_path / "cache"
    start, end = past_months(2)
    args = [str(config), "--from", start, "--to", end, "--json"]
    args += ["--rest-url", sim.rest_url, "--cache-dir", str(cache)]

    first = run(*args)
    assert first.returncode == 0, first.stderr
    folder = cache / exchange_folder(sim.rest_url) / "BTCUSDT" / "15m"
    files = sorted(folder.glob("*.csv"))
    expected = months(parse_when(start), parse_when(end))
    assert [f.name for f in files] == [f"{name}.csv" for name, _, _ in expected]
    assert not list(folder.glob("*.part.csv"))  # whole months in the past are final
    candles = [r for f in files for r in rows(f)]
    opens = [int(r[0]) for r in candles]
    assert opens == list(range(opens[0], opens[0] + 900_000 * len(opens), 900_000))
    assert len(candles) > 2 * 1000  # more than a page a month: paged
    pages = sum(-(-len(rows(f)) // 1000) for f in files)
    assert requests_of(first) == 1 + pages  # the server time, then 1000 candles a page

    sim.stop()  # the second run must not need the exchange
    second = run(*args)
    assert second.returncode == 0, second.stderr
    assert requests_of(second) == 0
    assert json.loads(second.stdout) == json.loads(first.stdout)

    # The same candles as a file give the same backtest.
    file = tmp_path / "BTCUSDT-15m.csv"
    file.write_text("".join(f.read_text() for f in files))
    from_file = run(str(config), str(file), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout) == json.loads(first.stdout)


def test_the_running_month_keeps_closed_candles_only_and_resumes_after_them(
    sim_factory: SimFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    sim = sim_factory()
    config = tmp_path / "bot.json"
    config.write_text(json.dumps({**BOT, "interval": "1h"}))
    cache = tmp_path / "cache"
    now = datetime.now(UTC)
    start = f"{now.year:04d}-{now.month:02d}-01"
    args = [str(config), "--from", start, "--rest-url", sim.rest_url]
    args += ["--cache-dir", str(cache), "--json"]

    first = run(*args)
    asked_at = int(time.time() * 1000)
    assert first.returncode == 0, first.stderr
    part = cache / exchange_folder(sim.rest_url) / "BTCUSDT" / "1h" / f"{start[:7]}.part.csv"
    assert part.exists() and not part.with_name(f"{start[:7]}.csv").exists()
    closes = [int(r[6]) for r in rows(part)]
    assert closes and all(c < asked_at for c in closes)  # no open candle cached

    second = run(*args)
    assert second.returncode == 0, second.stderr
    assert requests_of(second) == 2  # the server time, then one page after the cached rows
    opens = [int(r[0]) for r in rows(part)]
    assert opens == list(range(opens[0], opens[0] + 3_600_000 * len(opens), 3_600_000))


def test_a_429_is_waited_out_and_bad_ranges_are_refused(
    sim_factory: SimFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    sim = sim_factory()
    config = tmp_path / "bot.json"
    config.write_text(json.dumps({**BOT, "interval": "1d"}))
    start, end = past_months(1)
    sim.set_faults(rate_limit_s=10)  # outlasts the CLI start-up, even on a busy machine
    proc = run(
        str(config), "--from", start, "--to", end, "--rest-url", sim.rest_url,
        "--cache-dir", str(tmp_path / "cache"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sim.limits()["answered_429"] >= 1
    assert "backtest.fetch_rate_limited" in proc.stderr
    assert json.loads(proc.stdout)["candles"] >= 28

    both = run(str(config), str(tmp_path / "k.csv"), "--from", start)
    assert both.returncode == 2 and "not both" in both.stderr
    neither = run(str(config))
    assert neither.returncode == 2 and "--from" in neither.stderr
    reversed_ = run(str(config), "--from", end, "--to", start)
    assert reversed_.returncode == 2 and "must be after" in reversed_.stderr
    bad = run(str(config), "--from", "2025-13-01")
    assert bad.returncode == 2 and "'2025-13-01' is not a date" in bad.stderr


def test_a_gap_in_the_exchange_s_history_is_refused_with_the_cached_line(tmp_path: Path) -> None:
    """The exchange has holes (maintenance windows): a fetched range with one is refused
    as a kline file with one is, naming the cache file and line (no warm-up restart)."""
    config = tmp_path / "bot.json"
    config.write_text(json.dumps({**BOT, "interval": "1d"}))
    rest_url = "http://127.0.0.1:9"  # nothing listens: the cache must be enough
    folder = tmp_path / "cache" / exchange_folder(rest_url) / "BTCUSDT" / "1d"
    folder.mkdir(parents=True)
    jan = parse_when("2025-01-01")
    days = [d for d in range(31) if d != 20]  # 2025-01-21 missing
    folder.joinpath("2025-01.csv").write_text(
        "".join(
            f"{jan + d * 86_400_000},100,101,99,100.5,10,{jan + (d + 1) * 86_400_000 - 1},"
            "1000,5,5,500,0\n"
            for d in days
        )
    )
    args = [str(config), "--from", "2025-01-01", "--to", "2025-02-01", "--rest-url", rest_url]
    proc = run(*args, "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 2
    assert "2025-01.csv:21: gap of 1 1d candle(s)" in proc.stderr
    assert requests_of(proc) == 0
    whole = run(
        *args[:-4],
        "--to",
        "2025-01-21",
        "--rest-url",
        rest_url,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    )
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["candles"] == 20
