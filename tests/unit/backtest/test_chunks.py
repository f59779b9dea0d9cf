"""The engine's result does not depend on how the candles are chunked (streaming)."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from pathlib import Path

import pytest

from services.backtest.columns import read_columns
from services.backtest.engine import Backtest
from services.backtest.rules import default_rules
from shared.fills import Costs
from shared.klines import read_klines
from shared.strategies.config import BotConfig

CONFIGS = {
    "exits": {
        "strategy": "rsi",
        "params": {"period": 7, "oversold": 35, "overbought": 65},
        "stop_loss_pct": "1.5",
        "take_profit_pct": "2.5",
        "trailing_stop_pct": "1",
    },
    "atr": {"strategy": "macd_cross", "stop_loss_atr": "1.5", "take_profit_atr": "3"},
}


def write(path: Path, n: int) -> None:
    rng = random.Random(5)
    price, t = 60_000.0, 1_600_002_000_000 // 3_600_000 * 3_600_000
    with path.open("w") as fh:
        for i in range(n):
            o = price
            c = max(1.0, o * math.exp(rng.gauss(0, 0.006) + 0.002 * math.sin(i / 40)))
            h = max(o, c) * (1 + abs(rng.gauss(0, 0.003)))
            lo = min(o, c) * (1 - abs(rng.gauss(0, 0.003)))
            fh.write(f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},1.5\n")
            price, t = float(f"{c:.2f}"), t + 3_600_000


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_any_chunking_gives_the_same_result(tmp_path: Path, name: str) -> None:
    path = tmp_path / "k.csv"
    write(path, 2500)
    config = BotConfig.model_validate(
        {"name": name, "symbol": "BTCUSDT", "interval": "1h", "quote_allocation": "1000",
         **CONFIGS[name]}
    )  # fmt: skip
    costs = Costs(taker_fee=Decimal("0.001"), slippage=Decimal("0.0005"))
    split = list(read_klines(path, "1h"))[1200].open_time
    results = []
    for chunk in (1, 97, 65_536):
        for start_at in (0, split):
            engine = Backtest(config, default_rules("BTCUSDT"), costs, start_at=start_at)
            engine.feed(read_columns(path, "1h", chunk=chunk), end_before=split + 3_600_000 * 900)
            results.append((start_at, engine.summary()))
    whole = dict(results[:2])
    assert whole[0]["round_trips"] >= 10
    assert whole[0]["candles"] == 2100
    for start_at, summary in results:
        assert summary == whole[start_at]
    # the Kline stream (what the CLI may hand over) gives the same too
    engine = Backtest(config, default_rules("BTCUSDT"), costs)
    engine.run(read_klines(path, "1h"), end_before=split + 3_600_000 * 900)
    assert engine.summary() == whole[0]
