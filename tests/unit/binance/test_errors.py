"""Error mapping: each family of Binance answers becomes the error named by its remedy (reference §6)."""

from __future__ import annotations

import json

import pytest

from shared.binance.errors import (
    AuthError,
    BinanceError,
    DuplicateOrderError,
    NoSuchOrderError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    RetryableError,
    TimestampError,
    classify,
    connection_error,
    error_from_response,
    error_from_ws_api,
    retry_after_from_headers,
    weight_from_headers,
)
from shared.binance.parsing import parse_ws_frame
from shared.binance.schemas import ErrorBody, WsErrorReply
from tests.unit.binance.conftest import fixture_bytes


def body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}).encode()


@pytest.mark.parametrize(
    ("status", "code", "msg", "cls", "verdict"),
    [
        # §6: every 5XX is "execution status UNKNOWN", -1001 and -1008 included
        (500, -1001, "Internal error; unable to process your request. Please try again.", OutcomeUnknownError, "unknown"),
        (503, -1008, "Server is currently overloaded with other requests.", OutcomeUnknownError, "unknown"),
        # the same codes in a 4xx answer were refused before execution: retry
        (400, -1001, "Internal error; unable to process your request. Please try again.", RetryableError, "retry"),
        (400, -1008, "Server is currently overloaded with other requests.", RetryableError, "retry"),
        (500, -1006, "An unexpected response was received from the message bus.", OutcomeUnknownError, "unknown"),
        (503, -1007, "Timeout waiting for response from backend server. Send status unknown; execution status unknown.", OutcomeUnknownError, "unknown"),
        (502, -1000, "An unknown error occurred while processing the request.", OutcomeUnknownError, "unknown"),
        (429, -1003, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.", RateLimitedError, "rate_limited"),
        (429, -1015, "Too many new orders; current limit is 50 orders per 10 SECOND.", RateLimitedError, "rate_limited"),
        (400, -1013, "Filter failure: LOT_SIZE", RejectedError, "rejected"),
        (400, -2010, "Account has insufficient balance for requested action.", RejectedError, "rejected"),
        (400, -1121, "Invalid symbol.", RejectedError, "rejected"),
        (400, -1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'.", RejectedError, "rejected"),
        (400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.", RejectedError, "rejected"),
        (400, -1022, "Signature for this request is not valid.", AuthError, "rejected"),
        (401, -2014, "API-key format invalid.", AuthError, "rejected"),
        (401, -2015, "Invalid API-key, IP, or permissions for action.", AuthError, "rejected"),
        (400, -1021, "Timestamp for this request is outside of the recvWindow.", TimestampError, "rejected"),
        (400, -2013, "Order does not exist.", NoSuchOrderError, "rejected"),
        (400, -2011, "Unknown order sent.", NoSuchOrderError, "rejected"),
        (400, -2010, "Duplicate order sent.", DuplicateOrderError, "rejected"),
    ],
)  # fmt: skip
def test_each_code_family_maps_to_its_remedy(
    status: int, code: int, msg: str, cls: type[BinanceError], verdict: str
) -> None:
    err = error_from_response(status, body(code, msg), {})
    assert type(err) is cls
    assert (err.code, err.message, err.http_status) == (code, msg, status)
    assert classify(err) == verdict


def test_cancel_restrictions_are_a_plain_rejection_not_a_missing_order() -> None:
    err = error_from_response(
        400, body(-2011, "Order was not canceled due to cancel restrictions."), {}
    )
    assert type(err) is RejectedError


def test_filter_failures_carry_the_filter_name_for_both_codes() -> None:
    notional = error_from_response(400, body(-1013, "Filter failure: NOTIONAL"), {})
    assert isinstance(notional, RejectedError) and notional.filter_name == "NOTIONAL"
    # order-count filters come back as -2010 (reference §0 item 8)
    err = error_from_response(400, body(-2010, "Filter failure: MAX_NUM_ORDERS"), {})
    assert isinstance(err, RejectedError) and err.filter_name == "MAX_NUM_ORDERS"


def test_429_carries_retry_after_seconds_and_is_not_a_ban() -> None:
    err = error_from_response(
        429, body(-1003, "Too much request weight used"), {"Retry-After": "7"}
    )
    assert isinstance(err, RateLimitedError)
    assert (err.retry_after_s, err.banned) == (7.0, False)


def test_418_is_a_ban_with_its_retry_after() -> None:
    headers = [("retry-after", "120"), ("x-mbx-used-weight-1m", "6001")]
    err = error_from_response(
        418, body(-1003, "Way too much request weight used; IP banned until 1."), headers
    )
    assert isinstance(err, RateLimitedError)
    assert (err.retry_after_s, err.banned) == (120.0, True)
    assert classify(err) == "rate_limited"


def test_a_5xx_without_a_binance_body_is_an_unknown_outcome() -> None:
    err = error_from_response(502, b"<html>Bad Gateway</html>", {})
    assert isinstance(err, OutcomeUnknownError)
    assert err.code is None and "Bad Gateway" in err.message


def test_a_waf_403_without_a_body_is_rejected() -> None:
    err = error_from_response(403, b"", {})
    assert type(err) is RejectedError and err.http_status == 403


def test_ws_api_ban_computes_retry_after_from_epoch_ms() -> None:
    reply = parse_ws_frame(fixture_bytes("wsapi_error_ipbanned.json"))
    assert isinstance(reply, WsErrorReply) and isinstance(reply.status, int)
    err = error_from_ws_api(reply.status, reply.error)
    assert isinstance(err, RateLimitedError) and err.banned
    assert err.retry_after_s == pytest.approx((1659146400000 - 1659142907531) / 1000)


def test_rest_error_fixture_maps_to_rejected() -> None:
    err = error_from_response(400, fixture_bytes("rest_error_badsymbol.json"), {})
    assert type(err) is RejectedError and err.code == -1121


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
@pytest.mark.parametrize("code", [-1001, -1008, -1000, -1006, -1007, -2010, -1013])
def test_any_5xx_is_an_unknown_outcome_whatever_its_code(status: int, code: int) -> None:
    """A 5xx may follow an executed order (§6): the gateway must query before resending."""
    err = error_from_response(status, body(code, "anything"), {})
    assert type(err) is OutcomeUnknownError
    assert classify(err) == "unknown"


def test_ws_api_retry_codes_without_a_status_are_unknown_with_a_4xx_retryable() -> None:
    assert classify(error_from_ws_api(None, ErrorBody(code=-1001, msg="x"))) == "unknown"
    assert classify(error_from_ws_api(400, ErrorBody(code=-1001, msg="x"))) == "retry"
    assert classify(error_from_ws_api(503, ErrorBody(code=-1008, msg="x"))) == "unknown"


def test_connection_errors_depend_on_whether_the_request_left() -> None:
    assert classify(connection_error("connect refused", request_sent=False)) == "retry"
    assert classify(connection_error("read timeout", request_sent=True)) == "unknown"


def test_classify_calls_foreign_exceptions_unknown() -> None:
    assert classify(RuntimeError("boom")) == "unknown"
    assert classify(BinanceError("bare")) == "unknown"


def test_weight_header_is_read_case_insensitively() -> None:
    assert weight_from_headers({"X-MBX-USED-WEIGHT-1M": "42"}) == 42
    assert weight_from_headers([("x-mbx-used-weight-1m", " 7 ")]) == 7
    assert weight_from_headers({"X-Mbx-Used-Weight": "9"}) is None
    assert weight_from_headers({"x-mbx-used-weight-1m": "lots"}) is None


def test_retry_after_header_parsing() -> None:
    assert retry_after_from_headers({"Retry-After": "3"}) == 3.0
    assert retry_after_from_headers({"Retry-After": "soon"}) is None
    assert retry_after_from_headers({}) is None
