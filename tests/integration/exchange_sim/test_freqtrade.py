"""freqtrade (PyPI), live mode, a stock Binance spot configuration whose URLs point at
the simulator (nothing else changed: limit orders priced from the order book, its
websocket candles, default ccxt options): it downloads candles, enters and exits
trades, and its records match the simulator's orders.

The simulator runs at speed 1, since freqtrade follows the wall clock.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sim import SimClient, SimFactory

STRATEGY_DIR = Path(__file__).resolve().parent / "freqtrade"
FREQTRADE = Path(sys.executable).parent / "freqtrade"


def _point(urls: Any, host: str) -> Any:
    if isinstance(urls, dict):
        return {k: _point(v, host) for k, v in urls.items()}
    if isinstance(urls, str):
        return re.sub(
            r"^(https?|wss?)://[^/]+",
            lambda m: ("ws" if m.group(1).startswith("ws") else "http") + "://" + host,
            urls,
        )
    return urls


def _config(sim: SimClient) -> dict[str, Any]:
    """freqtrade's documented spot defaults; only the exchange URLs are the simulator's."""
    import ccxt
    import ccxt.pro

    api = _point(
        {**ccxt.binance().urls["api"], **ccxt.pro.binance().urls["api"]}, f"{sim.host}:{sim.port}"
    )
    return {
        "max_open_trades": 1,
        "stake_currency": "USDT",
        "stake_amount": 100,
        "tradable_balance_ratio": 0.99,
        "fiat_display_currency": "",
        "dry_run": False,
        "trading_mode": "spot",
        "margin_mode": "",
        "unfilledtimeout": {"entry": 10, "exit": 10, "exit_timeout_count": 0, "unit": "minutes"},
        "entry_pricing": {
            "price_side": "same",
            "use_order_book": True,
            "order_book_top": 1,
            "price_last_balance": 0.0,
            "check_depth_of_market": {"enabled": False, "bids_to_ask_delta": 1},
        },
        "exit_pricing": {"price_side": "same", "use_order_book": True, "order_book_top": 1},
        "exchange": {
            "name": "binance",
            "key": sim.api_key,
            "secret": sim.api_secret,
            "ccxt_config": {"urls": {"api": api}},
            "ccxt_async_config": {"urls": {"api": api}},
            "pair_whitelist": ["BTC/USDT"],
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "telegram": {"enabled": False, "token": "", "chat_id": ""},
        "bot_name": "sim",
        "initial_state": "running",
        "internals": {"process_throttle_secs": 2},
    }


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [str(FREQTRADE), *args], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _closed_trades(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return int(con.execute("select count(*) from trades where is_open = 0").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


@pytest.mark.timeout(400)
def test_freqtrade_downloads_trades_and_its_records_match_the_simulator(
    sim_factory: SimFactory, tmp_path: Path
) -> None:
    import pandas as pd

    sim = sim_factory(speed=1.0, symbols=["BTCUSDT", "ETHUSDT"])
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(sim)))
    user = tmp_path / "user"
    _run(["create-userdir", "--userdir", str(user)], tmp_path)

    # Candles: what freqtrade stored is what the simulator serves.
    _run(
        ["download-data", "--config", str(config), "--userdir", str(user),
         "--timeframes", "1m", "--days", "1"],
        tmp_path,
    )  # fmt: skip
    stored = pd.read_feather(user / "data" / "binance" / "BTC_USDT-1m.feather")
    assert len(stored) > 1000
    row = stored.iloc[-10]
    open_ms = int(row["date"].timestamp() * 1000)
    (served,) = httpx.get(
        sim.rest_url + "/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "startTime": open_ms, "limit": 1},
    ).json()
    assert served[0] == open_ms
    assert Decimal(str(row["close"])) == Decimal(served[4])
    assert Decimal(str(row["volume"])) == Decimal(served[5])

    # Live trading: two round trips, then stop.
    db = tmp_path / "trades.sqlite"
    log = (tmp_path / "trade.log").open("w")
    proc = subprocess.Popen(
        [str(FREQTRADE), "trade", "--config", str(config), "--userdir", str(user),
         "--strategy", "SimQuick", "--strategy-path", str(STRATEGY_DIR),
         "--db-url", f"sqlite:///{db}"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while _closed_trades(db) < 2:
            assert proc.poll() is None, (tmp_path / "trade.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "trade.log").read_text()[-3000:]
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()

    with sqlite3.connect(db) as con:
        trades = con.execute("select id, is_open, amount from trades order by id").fetchall()
        orders = con.execute(
            "select ft_trade_id, ft_order_side, order_id, status, filled, average from orders"
        ).fetchall()
    sim_orders = {str(o["orderId"]): o for o in sim.orders()}
    closed = [t for t in trades if t[1] == 0]
    assert len(closed) >= 2
    assert set(sim_orders) == {o[2] for o in orders}  # every order on both sides
    for trade_id, side, order_id, status, filled, _average in orders:
        record = sim_orders[order_id]
        assert record["side"] == side.upper()
        if status == "closed":
            assert record["status"] == "FILLED"
            assert Decimal(record["executedQty"]) == Decimal(str(filled))
        else:  # the last entry may still be open when freqtrade was stopped
            assert record["status"] in ("NEW", "FILLED", "CANCELED"), (trade_id, record)
    for trade_id, _open, amount in closed:
        sides = [o for o in orders if o[0] == trade_id]
        assert {o[1] for o in sides} == {"buy", "sell"}
        assert all(sim_orders[o[2]]["status"] == "FILLED" for o in sides)
        assert all(Decimal(str(o[4])) == Decimal(str(amount)) for o in sides)
