"""A kline event that decodes but cannot be a real candle is refused by the feed core
before it changes anything, and the feed goes on with the next good frame — replayed
from the recorded Binance frames, corrupted one field at a time (services/ingestion/feed.py).
The process test (tests/integration/ingestion) checks that the connection dead-letters
what is refused and stays up."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.ingestion.feed import MalformedKline, MarketFeed
from services.ingestion.sync import SyncState
from shared.binance.parsing import parse_ws_frame
from shared.binance.schemas import KlineEvent
from shared.messages import Candle

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
CLOSED = json.loads((FIXTURES / "ws_kline_closed.json").read_text())
M = 60_000


class ListSink:
    def __init__(self) -> None:
        self.candles: list[Candle] = []
        self.ticks: list[tuple[str, Decimal, int]] = []

    def candle(self, candle: Candle) -> None:
        self.candles.append(candle)

    def tick(self, symbol: str, price: Decimal, event_time: int) -> None:
        self.ticks.append((symbol, price, event_time))


def frame(**k_changes: Any) -> KlineEvent:
    payload = json.loads(json.dumps(CLOSED))
    event_time = k_changes.pop("E", None)
    if event_time is not None:
        payload["E"] = event_time
    payload["k"].update(k_changes)
    parsed = parse_ws_frame(json.dumps(payload))
    assert isinstance(parsed, KlineEvent)
    return parsed


def live_feed() -> tuple[MarketFeed, ListSink]:
    sink = ListSink()
    feed = MarketFeed(sink)
    # Redis holds the candle before the recorded one: the recorded close is the next.
    feed.add_stream("BNBBTC", "1m", CLOSED["k"]["t"] - M)
    return feed, sink


T = CLOSED["k"]["t"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"o": "abc"}, "invalid decimal"),
        ({"c": "NaN"}, "finite"),
        ({"h": "Infinity"}, "finite"),
        ({"v": "-1"}, "non-negative"),
        ({"t": T + 1, "T": T + M}, "grid"),
        ({"T": T + 2 * M - 1}, "close time"),
        ({"t": T + 1000 * M, "T": T + 1001 * M - 1}, "event time"),  # far ahead of E
        ({"E": T - 1}, "event time"),
    ],
)
def test_a_kline_that_cannot_be_a_real_candle_is_refused_before_it_changes_anything(
    changes: dict[str, Any], reason: str
) -> None:
    feed, sink = live_feed()
    sync = feed.syncs[("BNBBTC", "1m")]
    with pytest.raises(MalformedKline, match=reason):
        feed.on_kline(frame(**changes))
    assert sink.candles == [] and sink.ticks == []
    assert sync.state is SyncState.LIVE and sync.last_written == T - M and not sync.held
    assert feed.exchange_now == 0 and not feed.backfill_pending


def test_the_next_good_frame_after_a_refused_one_is_written() -> None:
    feed, sink = live_feed()
    with pytest.raises(MalformedKline):
        feed.on_kline(frame(t=T + 1, T=T + M))
    feed.on_kline(frame())
    assert [c.open_time for c in sink.candles] == [T]
    assert feed.syncs[("BNBBTC", "1m")].state is SyncState.LIVE
