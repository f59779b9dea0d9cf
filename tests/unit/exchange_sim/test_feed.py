"""Kline and ticker events per exchange second, checked against REST klines."""

from __future__ import annotations

import msgspec

from services.exchange_sim.candles import SymbolMarket
from services.exchange_sim.feed import Feed
from services.exchange_sim.market import SyntheticSource, spec_for
from shared.binance.schemas import KlineEvent, MiniTickerEvent

T0_S = 1_795_629_000  # a minute boundary


def _feed(update_every_s: int = 1) -> tuple[Feed, SymbolMarket]:
    market = SymbolMarket(SyntheticSource(spec_for("BTCUSDT"), 7))
    return Feed({"BTCUSDT": market}, update_every_s=update_every_s), market


def _klines(events: list[tuple[str, bytes, bool]]) -> list[KlineEvent]:
    return [
        msgspec.json.decode(raw, type=KlineEvent) for name, raw, _ in events if "@kline_" in name
    ]


def test_one_update_per_second_and_one_final_event_per_closed_candle() -> None:
    feed, _ = _feed()
    feed.add("btcusdt@kline_1m", T0_S - 1)
    events = _klines([e for s in range(T0_S, T0_S + 180) for e in feed.advance(s)])
    closed = [e for e in events if e.k.x]
    # subscribed during the candle that opened at T0-60: it closes first
    assert [e.k.t for e in closed] == [(T0_S + 60 * i) * 1000 for i in (-1, 0, 1)]
    assert all(e.E == e.k.T + 1 for e in closed)  # sent when the next candle starts
    updates = [e for e in events if not e.k.x]
    assert len(updates) == 180
    assert [e.E for e in updates] == [(T0_S + i) * 1000 for i in range(180)]


def test_closed_candles_equal_the_rest_klines() -> None:
    feed, market = _feed()
    feed.add("btcusdt@kline_5m", T0_S - 1)
    feed.add("btcusdt@kline_1m", T0_S - 1)
    events = feed.advance(T0_S + 601)
    for event in (e for e in _klines(events) if e.k.x):
        k = event.k
        (row,) = market.klines(k.i, (T0_S + 601) * 1000, start_ms=k.t, limit=1)
        assert row == [k.t, k.o, k.h, k.l, k.c, k.v, k.T, k.q, k.n, k.V, k.Q, "0"]
        assert 0 <= k.f <= k.L


def test_updates_can_be_spaced_out() -> None:
    feed, _ = _feed(update_every_s=2)
    feed.add("btcusdt@kline_1m", T0_S - 1)
    updates = [e for e in _klines(feed.advance(T0_S + 9)) if not e.k.x]
    assert len(updates) == 5


def test_a_long_tick_spaces_updates_but_keeps_every_close() -> None:
    feed, _ = _feed()
    feed.max_updates_per_tick = 10
    feed.add("btcusdt@kline_1m", T0_S - 1)
    events = _klines(feed.advance(T0_S + 3599))
    assert sum(e.k.x for e in events) == 60
    assert sum(not e.k.x for e in events) <= 11


def test_a_frozen_symbol_sends_nothing_and_resumes_without_the_frozen_candles() -> None:
    feed, market = _feed()
    feed.add("btcusdt@kline_1m", T0_S - 1)
    feed.advance(T0_S + 30)
    market.frozen_at = T0_S + 30
    assert feed.advance(T0_S + 300, frozen={"BTCUSDT"}) == []
    market.frozen_at = None
    feed.thaw("BTCUSDT", T0_S + 300)
    events = _klines(feed.advance(T0_S + 330))
    assert events and all(e.k.t >= (T0_S + 300) * 1000 for e in events)


def test_mini_ticker_reports_the_rolling_day() -> None:
    feed, market = _feed()
    feed.add("btcusdt@miniTicker", T0_S)
    (name, raw, final), *_ = feed.advance(T0_S + 1)
    event = msgspec.json.decode(raw, type=MiniTickerEvent)
    assert (name, event.s, final) == ("btcusdt@miniTicker", "BTCUSDT", False)
    assert event.c == market.fmt_price(market.price_ticks(T0_S + 1))


def test_stream_names_are_validated_like_binance() -> None:
    feed, _ = _feed()
    assert feed.valid("btcusdt@kline_1m") and feed.valid("btcusdt@miniTicker")
    assert feed.valid("btcusdt@kline_1M")  # the month interval is upper case
    assert not feed.valid("BTCUSDT@kline_1m")
    assert not feed.valid("btcusdt@kline_7m")
    assert not feed.valid("dogeusdt@kline_1m")


def test_quiet_streams_get_closes_but_no_updates() -> None:
    feed, _ = _feed()
    feed.add("btcusdt@kline_1m", T0_S - 1)
    events = _klines(feed.advance(T0_S + 120, quiet={"btcusdt@kline_1m"}))
    assert events and all(e.k.x for e in events)


def test_a_stream_resubscribed_after_a_pause_starts_at_the_current_second() -> None:
    feed, _ = _feed()
    feed.add("btcusdt@kline_1m", T0_S - 1)
    assert feed.advance(T0_S + 60)
    feed.remove("btcusdt@kline_1m")  # the last subscriber leaves
    feed.advance(T0_S + 400)
    feed.add("btcusdt@kline_1m", T0_S + 600)  # ten minutes later
    events = _klines(feed.advance(T0_S + 601))
    assert [(e.E, e.k.t, e.k.x) for e in events] == [
        ((T0_S + 601) * 1000, (T0_S + 600) * 1000, False)
    ]


def test_a_stream_added_to_a_followed_symbol_sends_nothing_older_than_its_subscription() -> None:
    feed, market = _feed()
    feed.add("btcusdt@kline_1m", T0_S)
    feed.advance(T0_S + 10)
    feed.add("btcusdt@kline_1h", T0_S + 40)  # the symbol's feed is still at T0+10
    events = feed.advance(T0_S + 50)
    hourly = _klines([e for e in events if e[0] == "btcusdt@kline_1h"])
    assert [e.E for e in hourly] == [(T0_S + s) * 1000 for s in range(41, 51)]
    (row,) = market.klines("1h", (T0_S + 50) * 1000, limit=1)  # the open hour at T0+50
    k = hourly[-1].k
    assert [k.t, k.o, k.h, k.l, k.c, k.v, k.T, k.q, k.n, k.V, k.Q, "0"] == row
    minute = _klines([e for e in events if e[0] == "btcusdt@kline_1m"])
    assert [e.E for e in minute] == [(T0_S + s) * 1000 for s in range(11, 51)]


def test_kline_payloads_are_exactly_what_msgspec_encodes_for_the_struct() -> None:
    feed, _ = _feed()
    feed.add("btcusdt@kline_1m", T0_S - 1)
    events = feed.advance(T0_S + 125)
    assert any(final for _, _, final in events)
    for _, raw, _ in events:
        assert msgspec.json.encode(msgspec.json.decode(raw, type=KlineEvent)) == raw
