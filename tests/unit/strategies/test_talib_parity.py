"""Every indicator, batch and incremental, equals TA-Lib to 1e-9 (the oracle; never
imported by product code) on the recorded candles and on generated walks, flat and
extreme ones included.

"1e-9 relative" is measured against the indicator's own scale: 100 for the 0..100
oscillators (RSI, stochastics, ADX), the price for price-valued ones (ATR, WMA,
MACD), so a value that crosses zero (MACD) is compared sensibly.

Where the project deliberately differs from TA-Lib (a window with no movement: RSI and
%K are 50 here, 0 in TA-Lib) the points are masked and the project's value is checked
on its own.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.strategies.indicators import (
    EMA,
    WMA,
    RollingBands,
    WilderRSI,
    bollinger,
    ema,
    sma,
    wilder_averages,
    wilder_rsi,
    wma,
)
from shared.strategies.oscillators import (
    MACD,
    NO_RANGE,
    Stochastic,
    StochRSI,
    macd,
    stoch_rsi,
    stochastic,
)
from shared.strategies.ranges import ADX, ATR, adx, atr

FIXTURES = Path(__file__).parents[2] / "fixtures" / "replay"
TOL = 1e-9


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with (FIXTURES / name).open() as f:
        rows = list(csv.DictReader(f))
    cols = [np.array([float(r[k]) for r in rows]) for k in ("high", "low", "close")]
    return cols[0], cols[1], cols[2]


RECORDED = {name: load(name) for name in ("BTCUSDT-1m.csv", "ETHUSDT-5m.csv")}


def assert_close(
    ours: np.ndarray,
    oracle: np.ndarray,
    scale: float | np.ndarray,
    mask: np.ndarray | None = None,
) -> None:
    """Within 1e-9 of max(|oracle|, scale) wherever the oracle is defined and not masked
    (``scale``: 100 for oscillators, each candle's close for price-valued indicators)."""
    defined = ~np.isnan(oracle)
    if mask is not None:
        defined &= ~mask
    assert not np.isnan(ours[defined]).any(), "undefined where the oracle has a value"
    err = np.abs(ours[defined] - oracle[defined])
    floor = np.broadcast_to(np.asarray(scale, dtype=np.float64), oracle.shape)[defined]
    bound = TOL * np.maximum(np.abs(oracle[defined]), floor)
    bad = np.flatnonzero(err > bound)
    assert bad.size == 0, f"first difference at {np.flatnonzero(defined)[bad[0]]}: {err[bad[0]]}"


def incremental(
    make: Callable[[], Any], *columns: np.ndarray, pick: Callable[[Any], float]
) -> np.ndarray:
    state = make()
    out = np.full(columns[0].size, np.nan)
    for i, values in enumerate(zip(*(c.tolist() for c in columns), strict=True)):
        got = state.update(*values)
        if got is not None:
            out[i] = pick(got)
    return out


def ident(v: Any) -> float:
    return float(v)


def no_range(high: np.ndarray, low: np.ndarray, period: int) -> np.ndarray:
    """True where the window ending there has no range (the stochastic's rule: under
    ``NO_RANGE`` of the level, where TA-Lib says 0 or a stochastic of rounding noise)."""
    out = np.zeros(high.size, dtype=bool)
    if high.size >= period:
        hh = np.lib.stride_tricks.sliding_window_view(high, period).max(axis=1)
        ll = np.lib.stride_tricks.sliding_window_view(low, period).min(axis=1)
        out[period - 1 :] = hh - ll <= NO_RANGE * np.maximum(np.abs(hh), np.abs(ll))
    return out


def spread(mask: np.ndarray, width: int) -> np.ndarray:
    """``mask`` widened forward by ``width - 1`` (a smoothing window that saw a masked point)."""
    out = mask.copy()
    for lag in range(1, width):
        out[lag:] |= mask[:-lag]
    return out


def rsi_flat(close: np.ndarray, period: int) -> np.ndarray:
    g, lo = wilder_averages(close, period)
    return (g + lo) == 0.0


def exact_windows(close: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """SMA, WMA and the Bollinger (upper, middle, lower) of every window, each window
    summed exactly (``math.fsum``): the oracle where TA-Lib's sliding sums are not."""
    out = [np.full(close.size, np.nan) for _ in range(5)]
    weights = range(1, n + 1)
    for i in range(n - 1, close.size):
        w = close[i - n + 1 : i + 1].tolist()
        mean = math.fsum(w) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in w) / n)
        out[0][i] = mean
        out[1][i] = math.fsum(k * v for k, v in zip(weights, w, strict=True)) / (n * (n + 1) / 2)
        out[2][i], out[3][i], out[4][i] = mean + 2.0 * std, mean, mean - 2.0 * std
    return tuple(out)


def check_all(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, sliding_talib: bool = True
) -> None:
    """Every indicator against TA-Lib. ``sliding_talib=False``: SMA, WMA and Bollinger
    against exact per-window sums instead (TA-Lib slides running sums, which lose all
    precision once a 10^13 larger price has passed through the window)."""
    if close.size == 0:  # TA-Lib frees an invalid pointer on some empty inputs
        assert macd(close).macd.size == stochastic(high, low, close).k.size == 0
        assert adx(high, low, close).size == atr(high, low, close).size == 0
        return
    price = np.abs(close)
    for n in (1, 2, 5, 14, 30):
        if sliding_talib:
            want_sma, want_wma = talib.SMA(close, n), talib.WMA(close, n)
        else:
            want_sma, want_wma = exact_windows(close, n)[:2]
        assert_close(sma(close, n), want_sma, price)
        assert_close(ema(close, n), talib.EMA(close, n), price)
        assert_close(incremental(partial(EMA, n), close, pick=ident), talib.EMA(close, n), price)
        assert_close(wma(close, n), want_wma, price)
        assert_close(incremental(partial(WMA, n), close, pick=ident), want_wma, price)
        assert_close(atr(high, low, close, n), talib.ATR(high, low, close, n), price)
        assert_close(
            incremental(partial(ATR, n), high, low, close, pick=ident),
            talib.ATR(high, low, close, n),
            price,
        )
    for n in (2, 5, 14, 30):
        flat = rsi_flat(close, n)
        assert_close(wilder_rsi(close, n), talib.RSI(close, n), 100.0, flat)
        assert_close(
            incremental(partial(WilderRSI, n), close, pick=ident),
            talib.RSI(close, n),
            100.0,
            flat,
        )
        assert (wilder_rsi(close, n)[flat] == 50.0).all()
        bands = bollinger(close, n, 2.0)
        oracle = (
            talib.BBANDS(close, n, 2.0, 2.0, 0) if sliding_talib else exact_windows(close, n)[2:]
        )
        inc = [
            incremental(partial(RollingBands, n, 2.0), close, pick=lambda b, j=j: b[j])
            for j in range(3)
        ]
        # TA-Lib's BBANDS takes the variance as mean(x^2) - mean(x)^2, which cancels
        # catastrophically when the deviation is tiny against the price (a flat window at
        # 3e7 gets a standard deviation of 0.7). Where its answer carries 1e-9 at all
        # (std >= 1e-3 of the price) ours must equal it; ours is exact everywhere
        # (test_indicators checks the two-pass definition, flat windows give width 0).
        ill = np.nan_to_num(oracle[0] - oracle[1], nan=0.0) < 4e-3 * np.abs(oracle[1])
        if not sliding_talib:
            ill[:] = False
        assert_close(bands.middle, oracle[1], price)
        assert_close(inc[0], oracle[1], price)
        for ours, mine, want in zip(
            (bands.upper, bands.lower), (inc[1], inc[2]), (oracle[0], oracle[2]), strict=True
        ):
            assert_close(ours, want, price, ill)
            assert_close(mine, want, price, ill)
        flat_bands = no_range(close, close, n)
        np.testing.assert_allclose(bands.upper[flat_bands], bands.middle[flat_bands], rtol=1e-12)
        assert_close(adx(high, low, close, n), talib.ADX(high, low, close, n), 100.0)
        assert_close(
            incremental(partial(ADX, n), high, low, close, pick=lambda v: v.adx),
            talib.ADX(high, low, close, n),
            100.0,
        )
    for fast, slow, sig in ((12, 26, 9), (3, 10, 16), (2, 3, 1)):
        lines = macd(close, fast, slow, sig)
        oracle = talib.MACD(close, fast, slow, sig)
        for j in range(3):
            assert_close(lines[j], oracle[j], price)
            assert_close(
                incremental(partial(MACD, fast, slow, sig), close, pick=lambda v, j=j: v[j]),
                oracle[j],
                price,
            )
    for k, ks, ds in ((5, 3, 3), (14, 1, 3), (14, 3, 3), (1, 1, 1)):
        zero_range = no_range(high, low, k)
        mask_k = spread(zero_range, ks)
        mask_d = spread(mask_k, ds)
        lines = stochastic(high, low, close, k, ks, ds)
        oracle = talib.STOCH(high, low, close, k, ks, 0, ds, 0)
        assert_close(lines.k, oracle[0], 100.0, mask_k)
        assert_close(lines.d, oracle[1], 100.0, mask_d)
        inc_k = incremental(partial(Stochastic, k, ks, ds), high, low, close, pick=lambda v: v.k)
        inc_d = incremental(partial(Stochastic, k, ks, ds), high, low, close, pick=lambda v: v.d)
        assert_close(inc_k, oracle[0], 100.0, mask_k)
        assert_close(inc_d, oracle[1], 100.0, mask_d)
    for rp, k, ds in ((14, 14, 3), (14, 5, 3), (5, 3, 1)):
        rsi = wilder_rsi(close, rp)
        defined = np.nan_to_num(rsi, nan=-1.0)
        flat = spread(rsi_flat(close, rp), k) | no_range(defined, defined, k)
        # %K = 100 * (rsi - min) / span multiplies the last-bit differences between two
        # RSI computations by 100 / span: compared where the span is >= 1e-3 RSI points
        # (conditioning, not a difference of definition).
        if defined.size >= k:
            w = np.lib.stride_tricks.sliding_window_view(defined, k)
            flat[k - 1 :] |= (w.max(axis=1) - w.min(axis=1)) < 1e-3
        mask_k = spread(flat, k)
        mask_d = spread(mask_k, ds)
        lines = stoch_rsi(close, rp, k, 1, ds)
        oracle = talib.STOCHRSI(close, rp, k, ds, 0)
        assert_close(lines.k, oracle[0], 100.0, mask_k)
        assert_close(lines.d, oracle[1], 100.0, mask_d)
        inc_d = incremental(partial(StochRSI, rp, k, 1, ds), close, pick=lambda v: v.d)
        assert_close(inc_d, oracle[1], 100.0, mask_d)
        # the smoothed (TradingView) form is TA-Lib's STOCH applied to the RSI
        smooth_lines = stoch_rsi(close, rp, k, 3, ds)
        tail = np.where(np.isnan(rsi), np.nan, rsi)[rp:]
        if tail.size:
            want = talib.STOCH(tail, tail, tail, k, 3, 0, ds, 0)
            assert_close(smooth_lines.d[rp:], want[1], 100.0, spread(mask_d, 3)[rp:])


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_candles_equal_talib(name: str) -> None:
    check_all(*RECORDED[name])


def walk(
    start: float, steps: list[float], ranges: list[tuple[float, float]]
) -> tuple[np.ndarray, ...]:
    close = start * np.exp(np.cumsum(np.array(steps, dtype=np.float64)))
    up = np.array([r[0] for r in ranges])
    down = np.array([r[1] for r in ranges])
    return close * (1.0 + up), close * (1.0 - down), close


# A move is either none at all (flat stretches) or at least 1e-4 of the price: TA-Lib
# treats magnitudes below 1e-8 as zero in places (ADX), which sub-unit prices would reach.
step = st.one_of(st.just(0.0), st.floats(1e-4, 0.2), st.floats(-0.2, -1e-4))
rng = st.one_of(st.just(0.0), st.floats(1e-4, 0.1))


@st.composite
def candles(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(0, 120))
    start = draw(st.sampled_from([1.0, 37.5, 25_000.0, 3e6]))
    steps = draw(st.lists(step, min_size=n, max_size=n))
    ranges = draw(st.lists(st.tuples(rng, rng), min_size=n, max_size=n))
    return walk(start, steps, ranges)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candles())
def test_generated_walks_equal_talib(data: tuple[np.ndarray, ...]) -> None:
    check_all(*data)


def test_flat_series_values() -> None:
    flat = np.full(60, 7.0)
    assert (wilder_rsi(flat, 14)[14:] == 50.0).all()
    assert talib.RSI(flat, 14)[-1] == 0.0  # TA-Lib's choice, not ours
    lines = stochastic(flat, flat, flat, 14, 3, 3)
    assert (lines.k[~np.isnan(lines.k)] == 50.0).all()
    assert (stoch_rsi(flat).d[~np.isnan(stoch_rsi(flat).d)] == 50.0).all()
    assert (atr(flat, flat, flat, 14)[14:] == 0.0).all()
    assert_close(adx(flat, flat, flat, 5), talib.ADX(flat, flat, flat, 5), 100.0)
    np.testing.assert_allclose(macd(flat).macd[25:], 0.0, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-8, 1e-3, 1e5, 1e9])
def test_extreme_prices_scale_exactly(scale: float) -> None:
    """Sub-satoshi and huge prices: oscillators are scale-free, price-valued indicators
    scale with the price (TA-Lib's 1e-8 zero threshold is not copied: see ranges.py)."""
    high, low, close = RECORDED["BTCUSDT-1m.csv"]
    h, lo, c = high / close[0] * scale, low / close[0] * scale, close / close[0] * scale
    base_h, base_l, base_c = high / close[0], low / close[0], close / close[0]

    def same(a: np.ndarray, b: np.ndarray) -> None:
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL * 100.0, equal_nan=True)

    same(wilder_rsi(c, 14), wilder_rsi(base_c, 14))
    same(adx(h, lo, c, 14), adx(base_h, base_l, base_c, 14))
    same(stochastic(h, lo, c).d, stochastic(base_h, base_l, base_c).d)
    same(stoch_rsi(c).d, stoch_rsi(base_c).d)
    same(atr(h, lo, c, 14) / scale, atr(base_h, base_l, base_c, 14))
    same(macd(c).macd / scale, macd(base_c).macd)
    same(wma(c, 10) / scale, wma(base_c, 10))
    assert math.isfinite(float(adx(h, lo, c, 14)[-1]))


def test_wild_jumps_equal_talib() -> None:
    """Crashes and spikes of 90 % / 10x between candles."""
    r = np.random.default_rng(5)
    steps = r.choice([-2.3, 2.3, 0.0, 0.01, -0.01], size=400)
    close = 100.0 * np.exp(np.cumsum(steps))
    high, low = close * (1 + r.random(400) * 0.5), close * (1 - r.random(400) * 0.5)
    check_all(high, low, close, sliding_talib=False)


@pytest.mark.parametrize("cut", [0, 1, 5, 14, 15, 40, 150])
def test_seeded_then_updated_equals_updated_all_along(cut: int) -> None:
    high, low, close = RECORDED["BTCUSDT-1m.csv"]
    makers: list[tuple[Callable[[], Any], bool]] = [
        (partial(WMA, 10), False),
        (partial(MACD, 5, 13, 4), False),
        (partial(StochRSI, 7, 5, 3, 3), False),
        (partial(ATR, 14), True),
        (partial(ADX, 7), True),
        (partial(Stochastic, 14, 3, 3), True),
    ]
    for make, hlc in makers:
        seeded, stepped = make(), make()
        cols = (high, low, close) if hlc else (close,)
        seeded.seed(*(c[:cut] for c in cols))
        for values in zip(*(c[:cut].tolist() for c in cols), strict=True):
            stepped.update(*values)
        for values in zip(*(c[cut:].tolist() for c in cols), strict=True):
            a, b = seeded.update(*values), stepped.update(*values)
            if a is None or b is None:
                assert a is None and b is None
            else:
                np.testing.assert_allclose(np.atleast_1d(a), np.atleast_1d(b), rtol=TOL, atol=TOL)
