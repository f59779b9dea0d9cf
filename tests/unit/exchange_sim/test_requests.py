"""Request validation: Binance's codes and messages, signatures and timestamps."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.exchange_sim.apierror import ApiError
from services.exchange_sim.exchange import rules_for
from services.exchange_sim.market import spec_for
from services.exchange_sim.requests import (
    ApiKey,
    Request,
    authenticate,
    check_filters,
    parse_new_order,
)
from shared.binance.signing import Ed25519Signer, HmacSigner, signed_query

# Reference §4 test vector.
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
NOW = 1499827319559
RULES = {"BTCUSDT": rules_for(spec_for("BTCUSDT"))}
KEYS = {"k": ApiKey("k", "a", secret=DOC_SECRET)}


def _code(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str]:
    return exc.value.code, exc.value.msg


def test_the_documented_hmac_example_is_accepted() -> None:
    req = Request.from_raw(f"{DOC_QUERY}&signature={DOC_SIG}", "")
    assert authenticate(req, "k", KEYS, NOW).account == "a"


def test_the_signature_covers_query_then_body_without_separator() -> None:
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    sig = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"  # §4
    req = Request.from_raw(query, f"{body}&signature={sig}")
    assert authenticate(req, "k", KEYS, NOW).key == "k"


def test_a_wrong_secret_is_1022() -> None:
    query = signed_query({"symbol": "BTCUSDT"}, HmacSigner("wrong"), timestamp=NOW)
    with pytest.raises(ApiError) as err:
        authenticate(Request.from_raw(query, ""), "k", KEYS, NOW)
    assert _code(err) == (-1022, "Signature for this request is not valid.")


def test_ed25519_signatures_are_verified_with_the_registered_key() -> None:
    private = Ed25519PrivateKey.generate()
    keys = {"ed": ApiKey("ed", "a", public_key=private.public_key())}
    query = signed_query({"symbol": "BTCUSDT"}, Ed25519Signer(private), timestamp=NOW)
    assert authenticate(Request.from_raw(query, ""), "ed", keys, NOW).key == "ed"
    other = signed_query(
        {"symbol": "BTCUSDT"}, Ed25519Signer(Ed25519PrivateKey.generate()), timestamp=NOW
    )
    with pytest.raises(ApiError) as err:
        authenticate(Request.from_raw(other, ""), "ed", keys, NOW)
    assert err.value.code == -1022


def test_percent_encoded_values_are_signed_as_sent() -> None:
    signer = HmacSigner(DOC_SECRET)
    query = signed_query({"symbol": "\uff11\uff12\uff13\uff14\uff15\uff16"}, signer, timestamp=NOW)
    assert quote("\uff11\uff12\uff13\uff14\uff15\uff16") in query
    assert authenticate(Request.from_raw(query, ""), "k", KEYS, NOW).key == "k"


def test_stale_and_future_timestamps_are_1021() -> None:
    signer = HmacSigner(DOC_SECRET)
    stale = signed_query({"a": "1"}, signer, timestamp=NOW - 5001)
    with pytest.raises(ApiError) as err:
        authenticate(Request.from_raw(stale, ""), "k", KEYS, NOW)
    assert _code(err) == (-1021, "Timestamp for this request is outside of the recvWindow.")
    ahead = signed_query({"a": "1"}, signer, timestamp=NOW + 1000)
    with pytest.raises(ApiError) as err:
        authenticate(Request.from_raw(ahead, ""), "k", KEYS, NOW)
    assert _code(err) == (
        -1021,
        "Timestamp for this request was 1000ms ahead of the server's time.",
    )
    wide = signed_query({"a": "1"}, signer, timestamp=NOW - 5001, recv_window=10000)
    assert authenticate(Request.from_raw(wide, ""), "k", KEYS, NOW)


def test_a_wall_clock_timestamp_passes_when_the_exchange_clock_runs_fast() -> None:
    signer = HmacSigner(DOC_SECRET)
    query = signed_query({"a": "1"}, signer, timestamp=NOW)
    assert authenticate(Request.from_raw(query, ""), "k", KEYS, NOW + 3_600_000, wall_ms=NOW)
    with pytest.raises(ApiError):
        authenticate(Request.from_raw(query, ""), "k", KEYS, NOW + 3_600_000, wall_ms=NOW + 9000)


def test_missing_and_unknown_api_keys() -> None:
    req = Request.from_raw(f"{DOC_QUERY}&signature={DOC_SIG}", "")
    with pytest.raises(ApiError) as err:
        authenticate(req, None, KEYS, NOW)
    assert (err.value.code, err.value.status) == (-2014, 401)
    with pytest.raises(ApiError) as err:
        authenticate(req, "nope", KEYS, NOW)
    assert (err.value.code, err.value.status) == (-2015, 401)


@pytest.mark.parametrize(
    ("query", "code", "msg"),
    [
        ("side=BUY&type=MARKET&quantity=1", -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."),
        ("symbol=NOPE&side=BUY&type=MARKET&quantity=1", -1121, "Invalid symbol."),
        ("symbol=BTCUSDT&side=UP&type=MARKET&quantity=1", -1117, "Invalid side."),
        ("symbol=BTCUSDT&side=BUY&type=ICEBERG&quantity=1", -1116, "Invalid orderType."),
        ("symbol=BTCUSDT&side=BUY&type=MARKET", -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
        ("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&price=2", -1106, "Parameter 'price' sent when not required."),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=2", -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=XYZ&quantity=1&price=2", -1115, "Invalid timeInForce."),
        ("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1e3", -1100, "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
        ("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&newClientOrderId=bad%20id", -1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'."),
    ],
)  # fmt: skip
def test_parameter_errors_use_binance_codes(query: str, code: int, msg: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_new_order(Request.from_raw(query, ""), RULES)
    assert _code(err) == (code, msg)


def test_default_response_type_is_full_for_market_and_limit_else_ack() -> None:
    _, resp = parse_new_order(
        Request.from_raw("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1", ""), RULES
    )
    assert resp == "FULL"
    _, resp = parse_new_order(
        Request.from_raw("symbol=BTCUSDT&side=BUY&type=LIMIT_MAKER&quantity=1&price=1", ""),
        RULES,
    )
    assert resp == "ACK"


@pytest.mark.parametrize(
    ("query", "filter_name"),
    [
        ("type=LIMIT&timeInForce=GTC&quantity=0.000001&price=50000", "LOT_SIZE"),
        ("type=LIMIT&timeInForce=GTC&quantity=0.001&price=50000.001", "PRICE_FILTER"),
        ("type=LIMIT&timeInForce=GTC&quantity=0.00001&price=50000", "NOTIONAL"),
        ("type=MARKET&quantity=101", "MARKET_LOT_SIZE"),
    ],
)
def test_filter_failures_are_1013_naming_the_filter(query: str, filter_name: str) -> None:
    order, _ = parse_new_order(Request.from_raw(f"symbol=BTCUSDT&side=BUY&{query}", ""), RULES)
    with pytest.raises(ApiError) as err:
        from decimal import Decimal

        check_filters(order, RULES["BTCUSDT"], Decimal(50000))
    assert _code(err) == (-1013, f"Filter failure: {filter_name}")


def test_the_query_string_wins_over_the_body() -> None:
    req = Request.from_raw("symbol=BTCUSDT", "symbol=ETHUSDT&side=BUY")
    assert req.params == {"symbol": "BTCUSDT", "side": "BUY"}
