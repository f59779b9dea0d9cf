"""Indicators agree with textbook definitions, written here independently and slowly."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from shared.strategies.indicators import (
    EMA,
    RollingBands,
    WilderRSI,
    bollinger,
    ema,
    sma,
    smooth,
    wilder_rsi,
)

TOL = 1e-9


def random_walk(n: int, seed: int, start: float = 100.0) -> list[float]:
    rng = random.Random(seed)
    out = [start]
    for _ in range(n - 1):
        out.append(max(0.01, out[-1] * (1.0 + rng.gauss(0.0, 0.01))))
    return out


# --- plain-Python references, straight from the definitions ----------------------------


def ref_sma(xs: list[float], n: int) -> list[float | None]:
    return [None if i < n - 1 else sum(xs[i - n + 1 : i + 1]) / n for i in range(len(xs))]


def ref_ema(xs: list[float], n: int) -> list[float | None]:
    out: list[float | None] = [None] * len(xs)
    if len(xs) < n:
        return out
    alpha = 2.0 / (n + 1)
    prev = sum(xs[:n]) / n
    out[n - 1] = prev
    for i in range(n, len(xs)):
        prev = alpha * xs[i] + (1.0 - alpha) * prev
        out[i] = prev
    return out


def ref_rsi(xs: list[float], n: int) -> list[float | None]:
    out: list[float | None] = [None] * len(xs)
    if len(xs) < n + 1:
        return out
    gains = [max(xs[i] - xs[i - 1], 0.0) for i in range(1, len(xs))]
    losses = [max(xs[i - 1] - xs[i], 0.0) for i in range(1, len(xs))]
    avg_g = sum(gains[:n]) / n
    avg_l = sum(losses[:n]) / n

    def value(g: float, lo: float) -> float:
        if lo == 0.0:
            return 100.0 if g > 0.0 else 50.0
        return 100.0 - 100.0 / (1.0 + g / lo)

    out[n] = value(avg_g, avg_l)
    for i in range(n + 1, len(xs)):
        avg_g = (avg_g * (n - 1) + gains[i - 1]) / n
        avg_l = (avg_l * (n - 1) + losses[i - 1]) / n
        out[i] = value(avg_g, avg_l)
    return out


def ref_bollinger(xs: list[float], n: int, k: float) -> list[tuple[float, float, float] | None]:
    out: list[tuple[float, float, float] | None] = [None] * len(xs)
    for i in range(n - 1, len(xs)):
        window = xs[i - n + 1 : i + 1]
        mean = sum(window) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in window) / n)
        out[i] = (mean, mean + k * std, mean - k * std)
    return out


def assert_matches(actual: np.ndarray, expected: list[float | None]) -> None:
    assert actual.shape == (len(expected),)
    for i, (a, e) in enumerate(zip(actual.tolist(), expected, strict=True)):
        if e is None:
            assert math.isnan(a), f"index {i}: expected NaN, got {a}"
        else:
            assert a == pytest.approx(e, rel=TOL, abs=TOL), f"index {i}"


CLOSES = random_walk(5000, seed=7)


@pytest.mark.parametrize("period", [1, 2, 5, 14, 50, 200])
def test_sma_matches_definition(period: int) -> None:
    assert_matches(sma(CLOSES, period), ref_sma(CLOSES, period))


@pytest.mark.parametrize("period", [1, 2, 9, 21, 100, 200])
def test_ema_is_sma_seeded_with_alpha_2_over_n_plus_1(period: int) -> None:
    assert_matches(ema(CLOSES, period), ref_ema(CLOSES, period))


@pytest.mark.parametrize("period", [1, 2, 7, 14, 50])
def test_rsi_is_wilder_smoothing_seeded_with_simple_average(period: int) -> None:
    assert_matches(wilder_rsi(CLOSES, period), ref_rsi(CLOSES, period))


@pytest.mark.parametrize(("period", "k"), [(2, 1.0), (20, 2.0), (50, 2.5)])
def test_bollinger_uses_population_std(period: int, k: float) -> None:
    bands = bollinger(CLOSES, period, k)
    expected = ref_bollinger(CLOSES, period, k)
    for j, arr in enumerate((bands.middle, bands.upper, bands.lower)):
        assert_matches(arr, [None if e is None else e[j] for e in expected])


def test_rsi_of_a_flat_series_is_50_and_of_a_rising_one_100() -> None:
    assert wilder_rsi([5.0] * 20, 14)[-1] == 50.0
    assert wilder_rsi([float(i) for i in range(1, 21)], 14)[-1] == 100.0
    assert wilder_rsi([float(-i) for i in range(1, 21)], 14)[-1] == 0.0


def test_short_series_give_nan_everywhere() -> None:
    assert np.isnan(ema([1.0, 2.0], 3)).all()
    assert np.isnan(wilder_rsi([1.0, 2.0, 3.0], 3)).all()
    assert np.isnan(bollinger([1.0], 2).middle).all()
    assert ema([], 3).size == 0


def test_smooth_equals_the_recurrence_across_block_boundaries() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    for alpha in (1.0, 0.5, 2.0 / 201, 1.0 / 300):
        y = smooth(x, alpha, 1.5)
        prev = 1.5
        for i, v in enumerate(x.tolist()):
            prev = (1.0 - alpha) * prev + alpha * v
            assert y[i] == pytest.approx(prev, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("period", [1, 3, 14, 30])
def test_incremental_indicators_agree_with_vectorised(period: int) -> None:
    closes = CLOSES[:3000]
    e, r, b = EMA(period), WilderRSI(period), RollingBands(period, 2.0)
    ev, rv, bv = ema(closes, period), wilder_rsi(closes, period), bollinger(closes, period, 2.0)
    for i, c in enumerate(closes):
        got_e, got_r, got_b = e.update(c), r.update(c), b.update(c)
        for got, want in ((got_e, ev[i]), (got_r, rv[i])):
            if math.isnan(want):
                assert got is None
            else:
                assert got == pytest.approx(want, rel=TOL, abs=TOL)
        if math.isnan(bv.middle[i]):
            assert got_b is None
        else:
            assert got_b is not None
            assert got_b.middle == pytest.approx(bv.middle[i], rel=TOL)
            assert got_b.upper == pytest.approx(bv.upper[i], rel=TOL)
            assert got_b.lower == pytest.approx(bv.lower[i], rel=TOL)


@pytest.mark.parametrize("cut", [0, 1, 5, 14, 15, 16, 400])
def test_seeded_then_updated_equals_updated_all_along(cut: int) -> None:
    closes = CLOSES[:600]
    for make in (lambda: EMA(14), lambda: WilderRSI(14), lambda: RollingBands(14, 2.0)):
        seeded, stepped = make(), make()
        seeded.seed(np.array(closes[:cut]))
        for c in closes[:cut]:
            stepped.update(c)
        for c in closes[cut:]:
            a, b = seeded.update(c), stepped.update(c)
            if a is None or b is None:
                assert a is None and b is None
            else:
                assert np.allclose(np.atleast_1d(a), np.atleast_1d(b), rtol=TOL, atol=TOL)
