"""Hypothesis strategies for stream messages: valid ones (every field inside what
:mod:`shared.messages` accepts) and the hostile JSON values a poisoned entry carries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from shared.bots import BOT_ID_PATTERN, CLIENT_ORDER_ID_PATTERN, INTENT_ID_PATTERN
from shared.messages import (
    INT64_MAX,
    INTERVAL_PATTERN,
    SYMBOL_PATTERN,
    BacktestJob,
    BotCommand,
    Candle,
    DeadLetter,
    Event,
    ExecutionReport,
    Fill,
    Message,
    OrderIntent,
    Tick,
)

symbols = st.from_regex(SYMBOL_PATTERN, fullmatch=True)
intervals = st.from_regex(INTERVAL_PATTERN, fullmatch=True)
bot_ids = st.from_regex(BOT_ID_PATTERN, fullmatch=True)
intent_ids = st.from_regex(INTENT_ID_PATTERN, fullmatch=True)
client_order_ids = st.from_regex(CLIENT_ORDER_ID_PATTERN, fullmatch=True)
millis = st.integers(0, INT64_MAX)
int64 = st.integers(-INT64_MAX - 1, INT64_MAX)

_TOP = Decimal("999999999999999999.999999")
positive = st.decimals(min_value=Decimal("1e-30"), max_value=_TOP).filter(lambda d: d > 0)
non_negative = st.one_of(st.just(Decimal(0)), positive)

fills = st.builds(Fill, price=positive, qty=positive, commission=non_negative, trade_id=int64)

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
# What a poisoned entry puts in a field: the Decimal traps, empty and odd strings.
_TRAPS: list[Any] = [
    "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "1e999999999", "-1e999999999",
    "1e-999999999", "0", "-0", "-1", "", " ", "{x}", "a:b", "btcusdt", "BTCUSDT\n",
    "1" * 400, None, 0, -1, 2**64, 1.5, True, [], {},
]  # fmt: skip
hostile = st.one_of(st.sampled_from(_TRAPS), json_values)

_valid: dict[type[Message], st.SearchStrategy[Any]] = {
    Candle: st.tuples(millis, st.integers(0, 10**12)).flatmap(
        lambda times: st.builds(
            Candle,
            symbol=symbols,
            interval=intervals,
            open_time=st.just(times[0]),
            close_time=st.just(min(times[0] + times[1], INT64_MAX)),
            open=positive,
            high=positive,
            low=positive,
            close=positive,
            volume=non_negative,
            quote_volume=non_negative,
            trades=millis,
            event_time=millis,
        )
    ),
    Tick: st.builds(Tick, symbol=symbols, price=positive, event_time=millis),
    BotCommand: st.builds(BotCommand, command_id=bot_ids, bot_id=bot_ids, issued_at=millis),
    OrderIntent: st.builds(
        OrderIntent,
        intent_id=intent_ids,
        bot_id=bot_ids,
        epoch=millis,
        symbol=symbols,
        quantity=st.none() | positive,
        quote_quantity=st.none() | positive,
        price=st.none() | positive,
        created_at=millis,
    ),
    ExecutionReport: st.builds(
        ExecutionReport,
        intent_id=intent_ids,
        client_order_id=client_order_ids,
        bot_id=bot_ids,
        symbol=symbols,
        executed_qty=non_negative,
        cumulative_quote=non_negative,
        avg_price=non_negative,
        commission=non_negative,
        fills=st.lists(fills, max_size=3).map(tuple),
        exchange_order_id=st.none() | int64,
        epoch=millis,
        ts=millis,
    ),
    Event: st.builds(
        Event,
        details=st.dictionaries(st.text(max_size=8), _json_scalars, max_size=3),
        ts=st.integers(-(2**63), INT64_MAX),
    ),
    DeadLetter: st.builds(DeadLetter),
    BacktestJob: st.builds(BacktestJob, job_id=bot_ids, ts=millis),
}


def valid(cls: type[Message]) -> st.SearchStrategy[Any]:
    """Messages of ``cls`` that decode (at the current schema version, the default)."""
    return _valid[cls]


def messages() -> st.SearchStrategy[Message]:
    return st.one_of(*(valid(cls) for cls in _valid))
