"""Candle sequencing: every open time exactly once, in order, no gap — replayed
without sockets (services/ingestion/sync.py, feed.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from services.ingestion.feed import MarketFeed
from services.ingestion.sync import StreamSync, SyncState
from shared.binance.parsing import parse_ws_frame
from shared.binance.schemas import KlineEvent
from shared.messages import Candle

M = 60_000
T0 = 1_700_000_040_000 - (1_700_000_040_000 % M)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"


def candle(i: int, *, closed: bool, event_offset: int = 1_000, close: str = "1") -> Candle:
    open_time = T0 + i * M
    return Candle(
        symbol="BTCUSDT",
        interval="1m",
        open_time=open_time,
        close_time=open_time + M - 1,
        open=Decimal(1),
        high=Decimal(2),
        low=Decimal(1),
        close=Decimal(close),
        volume=Decimal(3),
        closed=closed,
        event_time=open_time + (M if closed else event_offset),
    )


def live_sync(last: int | None = 0) -> StreamSync:
    sync = StreamSync("BTCUSDT", "1m")
    sync.observe_stored(None if last is None else T0 + last * M)
    return sync


def test_a_closed_candle_right_after_the_last_stored_one_is_written() -> None:
    sync = live_sync(0)
    assert sync.on_update(candle(1, closed=False)) == []
    assert [c.open_time for c in sync.on_update(candle(1, closed=True))] == [T0 + M]
    assert sync.state is SyncState.LIVE


def test_a_redelivered_close_is_not_written_twice() -> None:
    sync = live_sync(0)
    sync.on_update(candle(1, closed=True))
    assert sync.on_update(candle(1, closed=True)) == []
    assert sync.duplicates == 1


def test_a_new_open_time_without_a_close_asks_rest_for_the_missed_candle() -> None:
    sync = live_sync(0)
    sync.on_update(candle(1, closed=False))
    assert sync.on_update(candle(2, closed=False)) == []  # candle 1 closed unseen
    request = sync.request_backfill()
    assert request is not None and request.start_time == T0 + M
    rows = [candle(1, closed=True), candle(2, closed=False)]
    out, more = sync.on_backfill(rows, T0 + 2 * M + 500, request)
    assert [c.open_time for c in out] == [T0 + M] and more is None
    assert sync.state is SyncState.LIVE


def test_live_closes_during_a_backfill_are_held_and_written_after_the_gap_in_order() -> None:
    sync = live_sync(0)
    sync.on_update(candle(3, closed=False))  # reconnect: 1 and 2 missed
    request = sync.request_backfill()
    assert request is not None
    assert sync.on_update(candle(3, closed=True)) == []  # held while REST is in flight
    sync.on_update(candle(4, closed=False))
    rows = [candle(1, closed=True), candle(2, closed=True), candle(3, closed=False)]
    out, more = sync.on_backfill(rows, T0 + 3 * M + 10, request)  # REST saw 3 still open
    assert more is None
    assert [c.open_time for c in out] == [T0 + M, T0 + 2 * M, T0 + 3 * M]
    assert out[-1].closed and sync.state is SyncState.LIVE


def test_rest_behind_the_stream_triggers_another_backfill_instead_of_a_gap() -> None:
    sync = live_sync(0)
    sync.on_update(candle(3, closed=True))  # 1, 2 missing
    request = sync.request_backfill()
    assert request is not None
    out, _ = sync.on_backfill([candle(1, closed=True)], T0 + 4 * M, request)
    assert [c.open_time for c in out] == [T0 + M]  # 3 is held: 2 is still missing
    assert sync.state is SyncState.NEED_BACKFILL
    request = sync.request_backfill()
    assert request is not None and request.start_time == T0 + 2 * M
    out, _ = sync.on_backfill([candle(2, closed=True)], T0 + 4 * M, request)
    assert [c.open_time for c in out] == [T0 + 2 * M, T0 + 3 * M]
    assert sync.state is SyncState.LIVE


def test_a_hole_rest_never_fills_is_accepted_after_bounded_attempts() -> None:
    sync = live_sync(0)
    sync.max_attempts = 2
    sync.on_update(candle(5, closed=True))
    for _ in range(2):
        request = sync.request_backfill()
        assert request is not None
        out, _ = sync.on_backfill([], T0 + 6 * M, request)
    assert [c.open_time for c in out] == [T0 + 5 * M]
    assert sync.gaps_accepted == 1 and sync.state is SyncState.LIVE


def test_an_empty_store_fetches_history_and_skips_the_open_candle() -> None:
    sync = live_sync(None)
    sync.on_update(candle(10, closed=False))
    request = sync.request_backfill()
    assert request is not None and request.start_time is None and request.limit == 500
    rows = [candle(i, closed=False) for i in range(5, 11)]
    out, more = sync.on_backfill(rows, T0 + 10 * M + 5, request)
    assert [c.open_time for c in out] == [T0 + i * M for i in range(5, 10)]
    assert all(c.closed for c in out) and more is None


def test_a_full_page_continues_from_the_next_open_time() -> None:
    sync = live_sync(0)
    sync.page_limit = 3
    sync.on_update(candle(9, closed=False))
    request = sync.request_backfill()
    assert request is not None
    _out, more = sync.on_backfill([candle(i, closed=True) for i in (1, 2, 3)], T0 + 9 * M, request)
    assert more is not None and more.start_time == T0 + 4 * M
    assert sync.state is SyncState.BACKFILLING


def test_a_short_disconnect_that_missed_nothing_costs_no_rest_call() -> None:
    sync = live_sync(0)
    sync.on_update(candle(1, closed=False))
    sync.on_disconnect()
    sync.on_update(candle(1, closed=False))
    assert sync.state is SyncState.LIVE and sync.request_backfill() is None


def test_a_store_ahead_of_us_is_never_rewritten() -> None:
    sync = live_sync(0)
    sync.observe_stored(T0 + 2 * M)  # another instance wrote 1 and 2
    assert sync.on_update(candle(2, closed=True)) == []
    assert [c.open_time for c in sync.on_update(candle(3, closed=True))] == [T0 + 3 * M]


class ListSink:
    def __init__(self) -> None:
        self.candles: list[Candle] = []
        self.ticks: list[tuple[str, Decimal, int]] = []

    def candle(self, c: Candle) -> None:
        self.candles.append(c)

    def tick(self, symbol: str, price: Decimal, event_time: int) -> None:
        self.ticks.append((symbol, price, event_time))


def test_recorded_frames_replay_into_ticks_and_one_closed_candle() -> None:
    sink = ListSink()
    feed = MarketFeed(sink)
    open_frame = parse_ws_frame((FIXTURES / "ws_kline_combined.json").read_bytes())
    closed_frame = parse_ws_frame((FIXTURES / "ws_kline_closed.json").read_bytes())
    assert isinstance(open_frame, KlineEvent) and isinstance(closed_frame, KlineEvent)
    feed.add_stream("BNBBTC", "1m", open_frame.k.t - M)
    feed.on_kline(open_frame)
    feed.on_kline(closed_frame)
    feed.on_kline(closed_frame)
    assert [c.open_time for c in sink.candles] == [open_frame.k.t]
    assert sink.candles[0].close == Decimal(closed_frame.k.c)
    assert len(sink.ticks) == 3 and sink.ticks[0][0] == "BNBBTC"
    assert feed.exchange_now == closed_frame.E


def test_frames_of_a_stream_not_subscribed_are_ignored() -> None:
    sink = ListSink()
    feed = MarketFeed(sink)
    frame = parse_ws_frame((FIXTURES / "ws_kline_closed.json").read_text())
    assert isinstance(frame, KlineEvent)
    feed.on_kline(frame)
    assert sink.candles == [] and sink.ticks == [] and feed.ignored == 1
