"""``ema_cross_trend``, the multi-timeframe strategy: a 5m EMA crossover that buys only
while the 1h close is above the 1h EMA. The evaluator fed both series (in either order
when a 5m and a 1h candle close together) gives the signals ``analyze_bars`` computes
from the 5m candles alone; the filter takes out the crossings against the trend and
keeps the others; seeded from the declared warm-up of each series it decides as the
uninterrupted evaluator; a bot config refuses a trend interval not longer than its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from shared.strategies import Bars, create_strategy
from shared.strategies.base import SignalAction
from shared.strategies.config import BotConfig

FIVE = 300_000
HOUR = 3_600_000
N = 7200  # 5m candles: 600 hours
PARAMS = {"fast_period": 9, "slow_period": 21, "trend_interval": "1h", "trend_period": 20}


def five_minute_bars(n: int, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    drift = np.repeat(rng.normal(0.0, 0.0008, n // 600 + 1), 600)[:n]
    close = 100.0 * np.exp(np.cumsum(drift + rng.normal(0.0, 0.002, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(opens, close) * 1.001
    low = np.minimum(opens, close) * 0.999
    times = np.arange(n, dtype=np.int64) * FIVE
    return Bars(times, times + FIVE - 1, opens, high, low, close, np.ones(n))


def hourly(bars: Bars) -> Bars:
    """The 1h candles of whole hours of ``bars`` (as the exchange aggregates them)."""
    k = bars.size // 12
    idx = np.arange(k) * 12
    return Bars(
        bars.open_time[idx],
        bars.open_time[idx] + HOUR - 1,
        bars.open[idx],
        np.maximum.reduceat(bars.high[: k * 12], idx),
        np.minimum.reduceat(bars.low[: k * 12], idx),
        bars.close[idx + 11],
        np.add.reduceat(bars.volume[: k * 12], idx),
    )


BARS = five_minute_bars(N, seed=5)
HOURS = hourly(BARS)


def run_live(
    params: dict[str, Any],
    seed_len: int,
    hours_seed: int,
    start: int,
    stop: int,
    *,
    hour_first: bool,
) -> list[Any]:
    """Signals on 5m candles ``start..stop-1`` of an evaluator seeded as a runner seeds it
    (the last ``seed_len`` 5m candles before ``start``, the last ``hours_seed`` 1h candles
    closed by then), each 1h candle handed over when it closes (before or after the 5m
    candle that closes with it)."""
    ev = create_strategy("ema_cross_trend", params).evaluator()
    closed = int(np.searchsorted(HOURS.close_time, BARS.close_time[start - 1], side="right"))
    ev.seed_informative("1h", HOURS[max(0, closed - hours_seed) : closed])
    ev.seed_bars(BARS[start - seed_len : start])
    out = []
    h = closed
    for i in range(start, stop):
        closes_hour = h < HOURS.size and HOURS.close_time[h] == BARS.close_time[i]
        if closes_hour and hour_first:
            ev.on_informative("1h", HOURS.bar(h))
        out.append(ev.on_candle(BARS.bar(i)))
        if closes_hour and not hour_first:
            ev.on_informative("1h", HOURS.bar(h))
        h += closes_hour
    return out


def same(a: list[Any], b: list[Any], tol: float) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.action == y.action, (x, y)
        x_meta = {k: v for k, v in x.metadata.items() if k != "atr"}
        y_meta = {k: v for k, v in y.metadata.items() if k != "atr"}
        assert x_meta.keys() == y_meta.keys(), (x, y)
        for k, v in x_meta.items():
            assert abs(v - y_meta[k]) <= tol * max(abs(v), 1.0), (k, x, y)


def test_declares_its_trend_series_with_its_warmup() -> None:
    strategy = create_strategy("ema_cross_trend", PARAMS)
    assert strategy.informative == {"1h": 252}  # ema_warmup(20) + 1
    assert strategy.warmup_candles == 326  # the 5m ATR(14) dominates EMA(21)
    assert create_strategy("ema_cross").informative == {}


@pytest.mark.parametrize("hour_first", [True, False])
def test_live_signals_equal_analyze_whatever_the_order_of_simultaneous_closes(
    hour_first: bool,
) -> None:
    start = 1200
    live = run_live(PARAMS, start, start, start, N, hour_first=hour_first)
    strategy = create_strategy("ema_cross_trend", PARAMS)
    for i in range(start, N, 97):
        batch = strategy.analyze_bars(BARS[: i + 1])
        same([live[i - start]], [batch], 1e-9)
    assert run_live(PARAMS, start, start, start, N, hour_first=not hour_first) == live


def test_one_series_alone_rebuilds_the_trend_as_analyze_does() -> None:
    """A backtest feeds the bot's own series only: the trend comes from its candles."""
    start = 1200
    live = run_live(PARAMS, start, start, start, N, hour_first=True)
    ev = create_strategy("ema_cross_trend", PARAMS).evaluator()
    ev.seed_bars(BARS[:start])
    alone = [ev.on_candle(BARS.bar(i)) for i in range(start, N)]
    same(alone, live, 1e-9)


def test_the_trend_filter_keeps_crossings_with_the_trend_and_drops_the_others() -> None:
    start = 1200
    live = run_live(PARAMS, start, start, start, N, hour_first=True)
    plain = create_strategy("ema_cross", {"fast_period": 9, "slow_period": 21}).evaluator()
    plain.seed_bars(BARS[:start])
    crosses = [plain.on_candle(BARS.bar(i)).action for i in range(start, N)]
    kept = dropped = 0
    for signal, cross in zip(live, crosses, strict=True):
        if cross is SignalAction.BUY:
            up = signal.metadata["trend_close"] > signal.metadata["trend_ema"]
            assert signal.action is (SignalAction.BUY if up else SignalAction.HOLD)
            kept += up
            dropped += not up
            if not up:
                assert "against the trend" in signal.reason
        else:
            assert signal.action is cross  # SELLs and HOLDs untouched
    assert kept > 0 and dropped > 0


def test_seeded_from_each_series_warmup_decides_as_the_uninterrupted() -> None:
    strategy = create_strategy("ema_cross_trend", PARAMS)
    own, hours = strategy.warmup_candles, strategy.informative["1h"]
    for start in (4000, 5111, 6001):
        reference = run_live(PARAMS, start, start, start, N, hour_first=True)
        restarted = run_live(PARAMS, own, hours, start, N, hour_first=False)
        same(reference, restarted, 1e-9)


def test_a_bot_reads_its_own_series_and_the_declared_one() -> None:
    base = {"name": "b", "symbol": "BTCUSDT", "quote_allocation": "100"}
    cfg = BotConfig.model_validate(
        {**base, "interval": "5m", "strategy": "ema_cross_trend", "params": PARAMS}
    )
    assert cfg.series() == {"5m": 326, "1h": 252}
    with pytest.raises(ValidationError, match="reads a 5m series besides the bot's own 1h"):
        BotConfig.model_validate(
            {
                **base,
                "interval": "1h",
                "strategy": "ema_cross_trend",
                "params": {**PARAMS, "trend_interval": "5m"},
            }
        )
    with pytest.raises(ValidationError, match="unknown kline interval '7m'"):
        BotConfig.model_validate(
            {
                **base,
                "interval": "5m",
                "strategy": "ema_cross_trend",
                "params": {**PARAMS, "trend_interval": "7m"},
            }
        )
