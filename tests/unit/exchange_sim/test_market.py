"""The market path and the klines aggregated from it."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from services.exchange_sim.candles import SymbolMarket
from services.exchange_sim.market import (
    HOUR_S,
    ReplayCandle,
    ReplaySource,
    SyntheticSource,
    spec_for,
    summarize,
)

NOW_MS = 1_795_629_000_000  # 2026-11-25, a fixed exchange time
NOW_S = NOW_MS // 1000


def _market(seed: int = 7, symbol: str = "BTCUSDT") -> SymbolMarket:
    return SymbolMarket(SyntheticSource(spec_for(symbol), seed))


def test_same_seed_gives_identical_candles() -> None:
    a, b = _market(7), _market(7)
    assert a.klines("1m", NOW_MS, limit=300) == b.klines("1m", NOW_MS, limit=300)
    assert a.klines("1d", NOW_MS, limit=50) == b.klines("1d", NOW_MS, limit=50)


def test_different_seeds_or_symbols_give_different_paths() -> None:
    base = _market(7).klines("1h", NOW_MS, limit=24)
    assert _market(8).klines("1h", NOW_MS, limit=24) != base
    assert _market(7, "ETHUSDT").klines("1h", NOW_MS, limit=24) != base


def test_hour_summary_equals_the_aggregate_of_its_seconds() -> None:
    src = SyntheticSource(spec_for("ETHUSDT"), 3)
    hour = NOW_S // HOUR_S - 10
    assert src.summary(hour) == summarize(src.block(hour), hour * HOUR_S, 0, HOUR_S)


def test_hours_join_without_a_jump() -> None:
    src = SyntheticSource(spec_for("BTCUSDT"), 7)
    hour = NOW_S // HOUR_S - 3
    end_of_hour = int(src.block(hour).p[-1])
    start_of_next = int(src.block(hour + 1).p[0])
    assert abs(start_of_next - end_of_hour) < end_of_hour * 0.01


def test_every_interval_agrees_with_its_one_minute_candles() -> None:
    m = _market()
    for interval, minutes in (("5m", 5), ("1h", 60), ("4h", 240)):
        big = m.klines(interval, NOW_MS, limit=3)[0]
        small = m.klines("1m", NOW_MS, start_ms=big[0], limit=minutes)
        assert len(small) == minutes
        assert big[1] == small[0][1]  # open
        assert Decimal(big[2]) == max(Decimal(r[2]) for r in small)  # high
        assert Decimal(big[3]) == min(Decimal(r[3]) for r in small)  # low
        assert big[4] == small[-1][4]  # close
        assert Decimal(big[5]) == sum(Decimal(r[5]) for r in small)  # volume, exactly
        assert Decimal(big[7]) == sum(Decimal(r[7]) for r in small)  # quote volume
        assert big[8] == sum(r[8] for r in small)  # trades
        assert big[6] == small[-1][6]  # close time


def test_klines_without_times_end_with_the_open_candle() -> None:
    rows = _market().klines("1m", NOW_MS + 30_500, limit=5)
    assert len(rows) == 5
    assert rows[-1][0] == NOW_MS  # the candle containing now (open, partial)
    assert [r[0] for r in rows] == [NOW_MS - 60_000 * i for i in range(4, -1, -1)]
    assert all(r[6] == r[0] + 59_999 for r in rows)


def test_klines_start_time_selects_the_oldest_from_it() -> None:
    m = _market()
    rows = m.klines("1m", NOW_MS, start_ms=NOW_MS - 600_000 + 1, limit=3)
    assert [r[0] for r in rows] == [NOW_MS - 540_000, NOW_MS - 480_000, NOW_MS - 420_000]


def test_klines_end_time_selects_the_latest_up_to_it_and_both_bound() -> None:
    m = _market()
    rows = m.klines("1h", NOW_MS, end_ms=NOW_MS - 3 * 3_600_000, limit=2)
    assert rows[-1][0] == NOW_MS - 3 * 3_600_000 - (NOW_MS % 3_600_000)
    both = m.klines("1m", NOW_MS, start_ms=NOW_MS - 300_000, end_ms=NOW_MS - 120_000, limit=100)
    assert [r[0] for r in both] == [NOW_MS - 60_000 * i for i in range(5, 1, -1)]


def test_no_candle_exists_in_the_future_or_before_the_history() -> None:
    m = SymbolMarket(SyntheticSource(spec_for("BTCUSDT"), 7), first_second=NOW_S - 3600)
    assert m.klines("1m", NOW_MS, start_ms=NOW_MS + 3_600_000) == []
    rows = m.klines("1m", NOW_MS, limit=1000)
    assert len(rows) == 61
    assert rows[0][0] == NOW_MS - 3_600_000


def test_a_frozen_market_shows_nothing_after_the_freeze() -> None:
    m = _market()
    m.frozen_at = NOW_S
    rows = m.klines("1m", NOW_MS + 600_000, limit=3)
    assert rows[-1][0] == NOW_MS
    assert m.price(m.visible_second(NOW_S + 600)) == m.price(NOW_S)


def test_prices_sit_on_the_tick_grid_and_stay_positive() -> None:
    m = _market(11, "XRPUSDT")
    for row in m.klines("1h", NOW_MS, limit=200):
        for price in row[1:5]:
            value = Decimal(price)
            assert value > 0
            assert value % m.spec.tick == 0


def test_a_replayed_candle_is_served_back_unchanged() -> None:
    spec = spec_for("BTCUSDT")
    candles = [
        ReplayCandle(
            open_s=NOW_S + 60 * i,
            seconds=60,
            o=100_000 + i,
            h=100_500 + i,
            l=99_000 + i,
            c=100_200 + i if i % 2 else 99_800 + i,
            v=123_457,
            q=99_999_999,
            tb=60_001,
            tbq=50_000_001,
            n=77,
        )
        for i in range(5)
    ]
    m = SymbolMarket(ReplaySource(spec, candles))
    rows = m.klines("1m", NOW_MS + 10 * 60_000, start_ms=NOW_MS, limit=5)
    for row, cd in zip(rows, candles, strict=True):
        assert row[1:5] == [m.fmt_price(x) for x in (cd.o, cd.h, cd.l, cd.c)]
        assert row[5] == m.fmt_qty(cd.v)
        assert row[8] == cd.n
    five = m.klines("5m", NOW_MS + 10 * 60_000, start_ms=NOW_MS, limit=1)[0]
    assert Decimal(five[5]) == 5 * Decimal(rows[0][5])


def test_replay_holds_the_last_close_after_the_file_ends() -> None:
    spec = spec_for("BTCUSDT")
    cd = ReplayCandle(NOW_S, 60, 100, 110, 90, 105, 10, 10, 5, 5, 3)
    src = ReplaySource(spec, [cd])
    blk = src.block((NOW_S + 120) // HOUR_S)
    later = (NOW_S + 120) % HOUR_S
    assert int(blk.p[later]) == 105
    assert int(np.sum(blk.n[later:])) == 0


def test_a_replayed_candle_holds_its_open_for_its_first_half_then_walks_its_range() -> None:
    # The fill point the backtester shares: a MARKET order reaching the simulator within
    # half a candle of the previous close fills at the open (docs/backtest.md).
    hour_s = NOW_S - NOW_S % HOUR_S
    cd = ReplayCandle(hour_s, 60, 100, 130, 90, 120, 60, 60, 30, 30, 60)
    blk = ReplaySource(spec_for("BTCUSDT"), [cd]).block(hour_s // HOUR_S)
    path = [int(x) for x in blk.p[:60]]
    assert path[:30] == [100] * 30
    assert path[30:] != [100] * 30
    assert (min(path[30:]), max(path[30:]), path[-1]) == (90, 130, 120)
    assert path.index(90) < path.index(130)  # a rising candle: low before high


def test_minute_aggregates_equal_the_aggregate_of_their_seconds() -> None:
    src = SyntheticSource(spec_for("BNBUSDT"), 5)
    hour = NOW_S // HOUR_S - 30
    blk = src.block(hour)
    for m0, m1 in ((0, 60), (0, 1), (7, 22), (59, 60)):
        assert src.minute_summary(hour, m0, m1) == summarize(blk, hour * HOUR_S, m0 * 60, m1 * 60)


def test_evicted_minute_batches_are_regenerated_identically() -> None:
    src = SyntheticSource(spec_for("BTCUSDT"), 7)
    hour = NOW_S // HOUR_S - 2000
    first = src.minute_summary(hour, 3, 9)
    for back in range(1, 40):  # push the batch out of the bounded cache
        src.summary(hour - back * 64)
    assert src.minute_summary(hour, 3, 9) == first


def _rsi_round_trips(closes: list[float]) -> list[float]:
    """Buy when RSI(14) < 30, sell when it is > 70: the returns of the round trips."""
    from shared.strategies.indicators import wilder_rsi

    rsi = wilder_rsi(closes, 14)
    trips, entry = [], None
    for price, value in zip(closes, rsi, strict=True):
        if value != value:  # NaN warm-up
            continue
        if entry is None and value < 30:
            entry = price
        elif entry is not None and value > 70:
            trips.append(price / entry - 1)
            entry = None
    return trips


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_an_rsi_strategy_both_wins_and_loses(symbol: str) -> None:
    m = _market(7, symbol)
    closes: list[float] = []
    for k in range(5):  # 5000 one-minute candles
        rows = m.klines("1m", NOW_MS - k * 1000 * 60_000, limit=1000)
        closes = [float(r[4]) for r in rows] + closes
    trips = _rsi_round_trips(closes)
    assert sum(t > 0 for t in trips) >= 2
    assert sum(t < 0 for t in trips) >= 2
