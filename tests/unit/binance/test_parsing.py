"""Parsing the recorded payloads: every frame becomes a typed event or an UnknownFrame with a
reason; venue shapes convert to botfleet's Decimal messages and back without loss."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from shared.binance.parsing import (
    MiniTickerBatch,
    UnknownFrame,
    candle_to_kline_event,
    candle_to_rest_kline,
    decode_body,
    decode_rest_klines,
    encode_payload,
    execution_status,
    kline_event_to_candle,
    mini_ticker_to_tick,
    order_fills,
    parse_exchange_info,
    parse_ws_frame,
    rest_klines_to_candles,
)
from shared.binance.schemas import (
    CancelOrder,
    ExecutionReportEvent,
    KlineEvent,
    MiniTickerEvent,
    OrderAck,
    OrderFull,
    OutboundAccountPositionEvent,
    ServerShutdownEvent,
    WsErrorReply,
    WsReply,
)
from shared.messages import Candle, ExecutionStatus
from tests.unit.binance.conftest import fixture_bytes, fixture_json

D = Decimal


# --- WebSocket frames ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("ws_kline_open.json", KlineEvent),
        ("ws_kline_closed.json", KlineEvent),
        ("ws_kline_combined.json", KlineEvent),
        ("ws_miniticker_bnbbtc.json", MiniTickerEvent),
        ("ws_miniticker_combined.json", MiniTickerEvent),
        ("ws_servershutdown_raw.json", ServerShutdownEvent),
        ("ws_servershutdown_combined.json", ServerShutdownEvent),
        ("ws_subscribe_ok.json", WsReply),
        ("ws_listsubscriptions_ok.json", WsReply),
        ("ws_subscribe_error.json", WsErrorReply),
        ("wsapi_executionreport_new.json", ExecutionReportEvent),
        ("ws_executionreport_legacy.json", ExecutionReportEvent),
        ("wsapi_outboundaccountposition_constructed.json", OutboundAccountPositionEvent),
    ],
)
def test_recorded_frames_parse_to_their_typed_event(name: str, cls: type) -> None:
    raw = fixture_bytes(name)
    assert isinstance(parse_ws_frame(raw), cls)
    assert isinstance(parse_ws_frame(raw.decode()), cls)  # str frames too


def test_raw_and_combined_kline_frames_give_the_same_event() -> None:
    assert parse_ws_frame(fixture_bytes("ws_kline_open.json")) == parse_ws_frame(
        fixture_bytes("ws_kline_combined.json")
    )


def test_kline_event_to_candle_keeps_every_value_as_decimal() -> None:
    event = parse_ws_frame(fixture_bytes("ws_kline_open.json"))
    assert isinstance(event, KlineEvent)
    candle = kline_event_to_candle(event)
    assert candle == Candle(
        symbol="BNBBTC",
        interval="1m",
        open_time=1672515780000,
        close_time=1672515839999,
        open=D("0.0010"),
        high=D("0.0025"),
        low=D("0.0015"),
        close=D("0.0020"),
        volume=D("1000"),
        quote_volume=D("1.0000"),
        trades=100,
        closed=False,
        event_time=1672515782136,
    )
    closed = parse_ws_frame(fixture_bytes("ws_kline_closed.json"))
    assert isinstance(closed, KlineEvent) and kline_event_to_candle(closed).closed


def test_control_replies_carry_id_and_result() -> None:
    ok = parse_ws_frame(fixture_bytes("ws_subscribe_ok.json"))
    assert ok == WsReply(result=None, id=1)
    listing = parse_ws_frame(fixture_bytes("ws_listsubscriptions_ok.json"))
    assert listing == WsReply(result=["btcusdt@aggTrade"], id=3)
    error = parse_ws_frame(fixture_bytes("ws_subscribe_error.json"))
    assert isinstance(error, WsErrorReply) and error.error.code == 2 and error.id is None


def test_mini_ticker_array_and_tick() -> None:
    one = fixture_json("ws_miniticker_bnbbtc.json")
    batch = parse_ws_frame(json.dumps([one, {**one, "s": "ETHBTC"}]))
    assert isinstance(batch, MiniTickerBatch) and [t.s for t in batch.tickers] == [
        "BNBBTC",
        "ETHBTC",
    ]
    wrapped = parse_ws_frame(json.dumps({"stream": "!miniTicker@arr", "data": [one]}))
    assert isinstance(wrapped, MiniTickerBatch) and len(wrapped.tickers) == 1
    tick = mini_ticker_to_tick(batch.tickers[0])
    assert (tick.symbol, tick.price, tick.event_time) == ("BNBBTC", D("0.0025"), 1672515782136)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (fixture_bytes("ws_bookticker_bnbusdt.json"), "no known shape"),
        (b'{"e":"trade","E":1}', "unknown event type 'trade'"),
        (b'{"stream":"btcusdt@depth","data":{}}', "unknown stream 'btcusdt@depth'"),
        (b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1}}', "invalid payload"),
        (b'{"stream":"btcusdt@kline_1m"}', "without data"),
        (b"not json", "invalid JSON"),
        (b"42", "unexpected frame"),
        (b'{"subscriptionId":0,"event":{"e":"listStatus","E":1}}', "invalid payload"),
    ],
)
def test_unusable_frames_become_unknown_frames_with_a_reason(frame: bytes, reason: str) -> None:
    parsed = parse_ws_frame(frame)
    assert isinstance(parsed, UnknownFrame)
    assert reason in parsed.reason
    assert parsed.raw == frame.decode()[:2000]


def test_ws_api_error_reply_keeps_its_status_for_the_error_mapping() -> None:
    reply = parse_ws_frame(fixture_bytes("wsapi_error_ipbanned.json"))
    assert isinstance(reply, WsErrorReply)
    assert (reply.status, reply.error.code) == (418, -1003)
    assert isinstance(reply.error.data, dict) and reply.error.data["retryAfter"] == 1659146400000


def test_market_stream_reply_reencodes_without_a_status() -> None:
    reply = parse_ws_frame(fixture_bytes("ws_subscribe_ok.json"))
    assert json.loads(encode_payload(reply)) == {"result": None, "id": 1}


def test_execution_report_fields() -> None:
    report = parse_ws_frame(fixture_bytes("wsapi_executionreport_new.json"))
    assert isinstance(report, ExecutionReportEvent)
    assert (report.c, report.S, report.X, report.i, report.N, report.W) == (
        "mUvoqJxFIILMdfAW5iGSOW", "BUY", "NEW", 4293153, None, 1499405658657,
    )  # fmt: skip
    assert report.eR is msgspec.UNSET


# --- REST klines ------------------------------------------------------------------------------------


def test_rest_klines_fixture_to_candles_decides_closed_from_now() -> None:
    rows = decode_rest_klines(fixture_bytes("rest_klines_docs.json"))
    (before,) = rest_klines_to_candles("BNBBTC", "1w", rows, now_ms=1499644799999)
    (after,) = rest_klines_to_candles("BNBBTC", "1w", rows, now_ms=1499644800000)
    assert not before.closed and after.closed
    assert (after.open, after.high, after.low, after.close) == (
        D("0.01634790"), D("0.80000000"), D("0.01575800"), D("0.01577100"),
    )  # fmt: skip
    assert (after.volume, after.quote_volume, after.trades) == (
        D("148976.11427815"), D("2434.19055334"), 308,
    )  # fmt: skip


def test_rest_klines_skip_nothing_and_refuse_a_bad_interval() -> None:
    row = decode_rest_klines(fixture_bytes("rest_klines_docs.json"))[0]
    assert len(rest_klines_to_candles("X", "1w", [row] * 5, now_ms=0)) == 5
    with pytest.raises(ValueError, match="'2w'"):
        rest_klines_to_candles("X", "2w", [row], now_ms=0)


def test_candle_round_trips_through_simulator_payloads() -> None:
    event = parse_ws_frame(fixture_bytes("ws_kline_closed.json"))
    assert isinstance(event, KlineEvent)
    candle = kline_event_to_candle(event)
    again = parse_ws_frame(
        encode_payload(candle_to_kline_event(candle, event_time=candle.event_time))
    )
    assert isinstance(again, KlineEvent) and kline_event_to_candle(again) == candle
    body = encode_payload([candle_to_rest_kline(candle)])
    (from_rest,) = rest_klines_to_candles(
        candle.symbol, candle.interval, decode_rest_klines(body), now_ms=candle.close_time + 1
    )
    assert from_rest == msgspec.structs.replace(candle, event_time=0)


def test_kline_fixture_reencodes_to_the_same_json() -> None:
    event = parse_ws_frame(fixture_bytes("ws_kline_open.json"))
    assert json.loads(encode_payload(event)) == fixture_json("ws_kline_open.json")


# --- REST bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("rest_order_full.json", OrderFull),
        ("rest_order_ack.json", OrderAck),
        ("rest_order_cancel.json", CancelOrder),
    ],
)
def test_order_fixtures_decode_and_reencode_unchanged(name: str, cls: type) -> None:
    decoded: object = decode_body(fixture_bytes(name), cls)
    assert json.loads(encode_payload(decoded)) == fixture_json(name)


def test_full_order_fills_become_decimal_fills() -> None:
    order = decode_body(fixture_bytes("rest_order_full.json"), OrderFull)
    fills = order_fills(order)
    assert [f.trade_id for f in fills] == [56, 57, 58, 59, 60]
    assert sum(f.qty for f in fills) == D(order.executedQty)
    assert fills[1].commission == D("19.99500000") and fills[1].commission_asset == "USDT"
    assert execution_status(order.status) is ExecutionStatus.FILLED


def test_order_statuses_map_to_execution_statuses() -> None:
    assert execution_status("EXPIRED_IN_MATCH") is ExecutionStatus.EXPIRED
    assert execution_status("PENDING_NEW") is ExecutionStatus.NEW
    with pytest.raises(ValueError, match="'WEIRD'"):
        execution_status("WEIRD")


def test_exchange_info_fixture_parses_to_rules() -> None:
    rules = parse_exchange_info(fixture_bytes("rest_exchangeinfo_bnbbtc.json"))
    bnb = rules["BNBBTC"]
    assert (bnb.base_asset, bnb.quote_asset, bnb.status) == ("BNB", "BTC", "TRADING")
    assert (bnb.tick_size, bnb.min_price, bnb.max_price) == (
        D("0.000001"),
        D("0.000001"),
        D(100000),
    )
    assert (bnb.step_size, bnb.min_qty, bnb.max_qty) == (D("0.001"), D("0.001"), D(100000))
    assert bnb.notional_filter == "" and bnb.market_max_qty == 0
    assert "MARKET" in bnb.order_types


def test_exchange_info_tolerates_filter_types_it_does_not_know() -> None:
    payload = fixture_json("rest_exchangeinfo_btcusdt.json")
    payload["symbols"][0]["filters"].append({"filterType": "SOMETHING_NEW_2027", "foo": "1"})
    assert "BTCUSDT" in parse_exchange_info(json.dumps(payload))
