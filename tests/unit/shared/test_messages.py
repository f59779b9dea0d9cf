"""Every message survives encode/decode; an entry that is not a valid message, whatever
it holds, fails with a MessageDecodeError naming the problem and never with anything
else (issue 14)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.bots import client_order_id, intent_id
from shared.messages import (
    MESSAGE_TYPES,
    Candle,
    Event,
    ExecutionReport,
    ExecutionStatus,
    Fill,
    Message,
    MessageDecodeError,
    OrderIntent,
    Side,
    Tick,
    decode,
    decode_as,
    encode,
)
from tests.support.message_strategies import hostile, json_values, messages, valid

money = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal("1e9"), places=8, allow_nan=False
)
ULID = "01HZX3K4M5N6P7Q8R9S0T1V2W3"
INTENT = {
    "intent_id": f"{ULID}:1717000000000:buy",
    "bot_id": ULID,
    "epoch": 3,
    "symbol": "BTCUSDT",
    "side": "BUY",
    "quote_quantity": "100",
}


def entry(type_name: str, data: dict[str, Any]) -> dict[bytes, bytes]:
    return {b"type": type_name.encode(), b"data": json.dumps(data).encode()}


def decode_or_refuse(fields: dict[Any, Any]) -> Message | None:
    """The only two outcomes decode may have."""
    try:
        return decode(fields)
    except MessageDecodeError as exc:
        assert exc.reason
        return None


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=list(MESSAGE_TYPES))
def test_every_valid_message_round_trips(cls: type[Message]) -> None:
    @settings(max_examples=40)
    @given(valid(cls))
    def check(message: Message) -> None:
        assert decode(encode(message)) == message

    check()


@given(qty=money, price=money, fee=money)
def test_execution_report_keeps_decimals_exact(qty: Decimal, price: Decimal, fee: Decimal) -> None:
    report = ExecutionReport(
        intent_id="i",
        client_order_id="c",
        bot_id="b",
        symbol="BTCUSDT",
        side=Side.BUY,
        status=ExecutionStatus.FILLED,
        final=True,
        executed_qty=qty,
        fills=(Fill(price=price, qty=qty, commission=fee, commission_asset="USDT"),),
    )
    back = decode_as(encode(report), ExecutionReport)
    assert back.fills[0].price == price and str(back.executed_qty) == str(qty)


def test_decode_names_missing_and_unknown_fields() -> None:
    with pytest.raises(MessageDecodeError, match="missing field 'type'"):
        decode({"data": b"{}"})
    with pytest.raises(MessageDecodeError, match="unknown message type 'bogus'"):
        decode({"type": "bogus", "data": b"{}"})
    with pytest.raises(MessageDecodeError, match="invalid order_intent"):
        decode({b"type": b"order_intent", b"data": b"not json"})
    with pytest.raises(MessageDecodeError, match="newer"):
        decode({"type": "tick", "data": b'{"v": 99, "symbol": "X", "price": "1", "event_time": 1}'})


def test_decode_as_rejects_other_types() -> None:
    intent = OrderIntent(
        intent_id="i", bot_id="b", epoch=1, symbol="ETHUSDT", side=Side.SELL, quantity=Decimal(1)
    )
    with pytest.raises(MessageDecodeError, match="expected candle"):
        decode_as(encode(intent), Candle)


# --- what the boundary refuses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": "NaN", "quote_quantity": None}, "quantity NaN is not a finite number"),
        ({"quantity": "sNaN", "quote_quantity": None}, "quantity sNaN is not a finite number"),
        ({"quote_quantity": "Infinity"}, "quote_quantity Infinity is not a finite number"),
        ({"quote_quantity": "1e999999999"}, r"quote_quantity 1E\+999999999 is out of range"),
        ({"quote_quantity": "1e-999999999"}, "quote_quantity 1E-999999999 is too small"),
        ({"quote_quantity": "1e18"}, "out of range"),
        ({"quote_quantity": "0"}, "quote_quantity 0 must be positive"),
        ({"quote_quantity": "-5"}, "quote_quantity -5 must be positive"),
        ({"price": "-1"}, "price -1 must be positive"),
        ({"symbol": ""}, "symbol '' does not match"),
        ({"symbol": "btcusdt"}, "symbol 'btcusdt' does not match"),
        ({"symbol": "BTC{USDT}"}, "symbol 'BTC{USDT}' does not match"),
        ({"symbol": "BTCUSDT\n"}, "does not match"),  # $ alone would let it through
        ({"symbol": "A" * 21}, "does not match"),
        ({"intent_id": ""}, "intent_id '' does not match"),
        ({"intent_id": "a b"}, "intent_id 'a b' does not match"),
        ({"intent_id": "x" * 129}, "intent_id 'x+' does not match"),
        ({"bot_id": ""}, "bot_id '' does not match"),
        ({"bot_id": "b:1"}, "bot_id 'b:1' does not match"),
        ({"bot_id": "{b}"}, r"bot_id '\{b\}' does not match"),
        ({"epoch": -1}, r"Expected `int` >= 0 - at `\$.epoch`"),
        ({"epoch": 2**64}, r"at `\$.epoch`"),
        ({"created_at": 10**30}, r"at `\$.created_at`"),
        ({"side": "HOLD"}, r"at `\$.side`"),
    ],
)
def test_an_intent_that_can_never_be_valid_is_refused_naming_the_field(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MessageDecodeError, match=reason):
        decode_as(entry("order_intent", {**INTENT, **change}), OrderIntent)


@pytest.mark.parametrize(
    ("type_name", "data", "reason"),
    [
        ("candle", {"close": "NaN"}, "close NaN is not a finite number"),
        ("candle", {"low": "0"}, "low 0 must be positive"),
        ("candle", {"high": "Infinity"}, "high Infinity is not a finite number"),
        ("candle", {"volume": "-1"}, "volume -1 must be non-negative"),
        ("candle", {"interval": "1x"}, "interval '1x' does not match"),
        ("candle", {"interval": "1m:x"}, "interval '1m:x' does not match"),
        ("candle", {"close_time": 1}, "close_time 1 is before open_time"),
        ("tick", {"price": "0"}, "price 0 must be positive"),
        ("tick", {"price": "1e999999999"}, "out of range"),
        ("execution_report", {"executed_qty": "-1"}, "executed_qty -1 must be non-negative"),
        ("execution_report", {"avg_price": "NaN"}, "avg_price NaN is not a finite number"),
        ("execution_report", {"client_order_id": "x" * 37}, "client_order_id 'x+' does not"),
        ("execution_report", {"client_order_id": "bf:1"}, "client_order_id 'bf:1' does not"),
        ("execution_report", {"fills": [{"price": "1", "qty": "0", "commission": "0",
                                          "commission_asset": "BNB"}]}, "fill qty 0 must be"),
        ("execution_report", {"fills": [{"price": "1", "qty": "1", "commission": "-0.1",
                                          "commission_asset": "BNB"}]}, "fill commission -0.1"),
        ("bot_command", {"command_id": ""}, "command_id '' does not match"),
    ],
)  # fmt: skip
def test_market_data_reports_and_commands_are_refused_naming_the_field(
    type_name: str, data: dict[str, Any], reason: str
) -> None:
    good = {
        "candle": {
            "symbol": "BTCUSDT", "interval": "1m", "open_time": 60_000, "close_time": 119_999,
            "open": "1", "high": "2", "low": "0.5", "close": "1.5", "volume": "10",
        },
        "tick": {"symbol": "BTCUSDT", "price": "1", "event_time": 1},
        "execution_report": {
            "intent_id": INTENT["intent_id"], "client_order_id": client_order_id("i"),
            "bot_id": ULID, "symbol": "BTCUSDT", "side": "BUY", "status": "FILLED", "final": True,
        },
        "bot_command": {"command_id": ULID, "bot_id": ULID, "action": "start", "issued_at": 1},
    }[type_name]  # fmt: skip
    assert decode(entry(type_name, good))  # the base is valid: the change is what is refused
    with pytest.raises(MessageDecodeError, match=reason):
        decode(entry(type_name, {**good, **data}))


def test_every_id_and_amount_the_fleet_makes_still_passes() -> None:
    """The runner's ids (bot ULID, trigger, action) and its risk sizing's 28-digit quote,
    the gateway's client order ids and a Unicode symbol (reference §2.1) all decode."""
    for trigger, action in (("1717000000000", "buy"), ("t1717000000123", "exit-stop_loss"),
                            ("stop1717000000000", "sell"), ("1", "exit-trailing_stop")):  # fmt: skip
        iid = intent_id(ULID, trigger, action)
        data = {**INTENT, "intent_id": iid, "quote_quantity": "333.3333333333333333333333333"}
        intent = decode_as(entry("order_intent", data), OrderIntent)
        assert intent.intent_id == iid and intent.quote_quantity == Decimal(data["quote_quantity"])
        report = {
            "intent_id": iid, "client_order_id": client_order_id(iid), "bot_id": ULID,
            "symbol": "币安人生USDT", "side": "SELL", "status": "FILLED", "final": True,
            "avg_price": str(Decimal(1) / Decimal(3) / Decimal(10**8)),
        }  # fmt: skip
        assert decode_as(entry("execution_report", report), ExecutionReport).avg_price > 0


def test_the_services_own_decoders_refuse_the_same_values() -> None:
    """The runner and the API decode candles and ticks with decoders of their own: the
    checks live in the types, so those refuse too (as a ValidationError they handle)."""
    bad = b'{"symbol": "BTCUSDT", "price": "NaN", "event_time": 1}'
    with pytest.raises(msgspec.ValidationError, match="price NaN is not a finite number"):
        msgspec.json.Decoder(Tick).decode(bad)
    with pytest.raises(ValueError, match="quantity NaN"):  # and so does a Struct built in code
        OrderIntent(
            intent_id="i", bot_id="b", epoch=1, symbol="X", side=Side.BUY, quantity=Decimal("NaN")
        )


# --- whatever an entry holds: a Message or a MessageDecodeError, nothing else -----------

type_names = st.sampled_from([*MESSAGE_TYPES, "bogus", ""])


@settings(max_examples=300)
@given(type_name=type_names, data=st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_are_refused(type_name: str, data: bytes) -> None:
    decode_or_refuse({b"type": type_name.encode(), b"data": data})


@settings(max_examples=200)
@given(type_name=type_names, data=st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_arbitrary_json_objects_decode_or_are_refused(type_name: str, data: dict[str, Any]) -> None:
    decode_or_refuse({"type": type_name, "data": json.dumps(data)})


field_values = st.one_of(
    st.none(), st.binary(max_size=40), st.text(max_size=40), st.integers(), st.floats(),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=300)
@given(
    fields=st.dictionaries(
        st.sampled_from(["type", "data", b"type", b"data", "other", b"x"]), field_values
    )
)
@example(fields={"type": "candle", "data": 5})
@example(fields={"type": "tick", "data": "\ud800"})
@example(fields={b"type": b"\xff", b"data": b"{}"})
def test_arbitrary_field_maps_decode_or_are_refused(fields: dict[Any, Any]) -> None:
    decode_or_refuse(fields)


@settings(max_examples=400)
@given(message=messages(), data=st.data())
def test_a_valid_message_with_one_field_poisoned_decodes_or_is_refused(
    message: Message, data: st.DataObject
) -> None:
    """A valid message with one field replaced by a hostile value: refused, or still a
    message whose amounts can be computed with and which round-trips."""
    fields = msgspec.to_builtins(message)
    name = data.draw(st.sampled_from(sorted(fields)))
    fields[name] = data.draw(hostile)
    back = decode_or_refuse({"type": message.TYPE, "data": json.dumps(fields)})
    if back is not None:
        assert decode(encode(back)) == back
        for value in msgspec.structs.asdict(back).values():
            if isinstance(value, Decimal):
                assert value.is_finite() and abs(value) < Decimal("1e18")
                _ = value * 2 + 1  # arithmetic on it cannot raise


def test_an_event_detail_that_json_cannot_carry_is_refused() -> None:
    """Infinity in an event's details would travel as null and come back changed."""
    with pytest.raises(ValueError, match=r"details\.x inf is not a finite number"):
        Event(kind="k", message="m", details={"x": float("inf")})
