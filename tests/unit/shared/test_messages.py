"""Every message survives encode/decode; bad entries fail with a reason that names the problem."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.messages import (
    MESSAGE_TYPES,
    Candle,
    ExecutionReport,
    ExecutionStatus,
    Fill,
    MessageDecodeError,
    OrderIntent,
    Side,
    decode,
    decode_as,
    encode,
)

money = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal("1e9"), places=8, allow_nan=False
)
# Messages carry finite amounts at the current schema version; the Binance boundary
# refuses anything else before a Struct is built.
st.register_type_strategy(Decimal, st.decimals(allow_nan=False, allow_infinity=False))


def _current(cls: type) -> st.SearchStrategy:
    return st.builds(cls, v=st.just(1))


@settings(max_examples=50)
@given(_current(Candle))
def test_candle_round_trips(candle: Candle) -> None:
    assert decode(encode(candle)) == candle


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=list(MESSAGE_TYPES))
def test_every_message_type_round_trips(cls: type) -> None:
    @settings(max_examples=30)
    @given(_current(cls))
    def check(message: object) -> None:
        assert decode(encode(message)) == message  # type: ignore[arg-type]

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
