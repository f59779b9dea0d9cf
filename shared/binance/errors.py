"""Binance errors, named by their remedy, and the pure mapping from responses to them.

Owns: the exception tree every Binance caller raises and catches, the mapping of an
HTTP status + error body (reference §6) onto it, the classification the retry loops
use, and reading the weight / Retry-After headers (§7). Shells map their transport's
exceptions once, at the edge, with :func:`connection_error` and ``raise ... from``.

::

    BinanceError(code, message, http_status)
    ├── RetryableError            not executed; send again after a backoff
    │                             (-1001, -1008 in a 4xx answer, connection failed
    │                             before sending)
    ├── OutcomeUnknownError       may have executed; query by client order id first
    │                             (every 5xx whatever its code, -1006, -1007,
    │                             timeout/reset after sending)
    ├── RateLimitedError          429 (-1003 weight, -1015 orders), 418 ban;
    │                             carries retry_after_s and banned
    └── RejectedError             final 4xx: do not resend as is; filter_name for -1013
        ├── AuthError             -1022 bad signature, -2014, -2015, HTTP 401
        ├── TimestampError        -1021: resync the clock, retry once
        ├── NoSuchOrderError      -2013, -2011 "Unknown order sent."
        └── DuplicateOrderError   -2010 "Duplicate order sent." (id still open)

``classify(exc)`` turns any exception into ``"retry" | "unknown" | "rate_limited" |
"rejected"``; anything it does not know is ``"unknown"``, the safe answer for orders
(DESIGN "Traps": an unknown outcome is resolved by a query, never by resending).

Reference §6: a ``5XX`` answer means "execution status UNKNOWN", so a 500 carrying
``-1001`` ("internal error, retry") or a 503 carrying ``-1008`` is an unknown outcome,
not a retry: only an answer that is not a 5xx (a 4xx, or the WS API's 400) proves the
request was refused before the matching engine saw it. A code with no HTTP status
at all proves nothing either, and stays unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from shared.binance.schemas import ErrorBody

Classification = Literal["retry", "unknown", "rate_limited", "rejected"]
Headers = Mapping[str, str] | Iterable[tuple[str, str]]

# §6 codes by remedy.
RETRYABLE_CODES = frozenset({-1001, -1008})  # DISCONNECTED, SERVER_BUSY (only outside a 5xx)
UNKNOWN_OUTCOME_CODES = frozenset({-1006, -1007})  # UNEXPECTED_RESP, TIMEOUT
RATE_LIMIT_CODES = frozenset({-1003, -1015})  # TOO_MANY_REQUESTS, TOO_MANY_ORDERS
AUTH_CODES = frozenset(
    {-1022, -2014, -2015}
)  # INVALID_SIGNATURE, BAD_API_KEY_FMT, REJECTED_MBX_KEY
TIMESTAMP_CODE = -1021
NO_SUCH_ORDER_CODE = -2013
CANCEL_REJECTED_CODE = -2011
NEW_ORDER_REJECTED_CODE = -2010

_FILTER_RE = re.compile(r"Filter failure: ([A-Z_]+)")


class BinanceError(Exception):
    """Base of every Binance error: venue ``code`` (None if none), ``message``, ``http_status``."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None):
        super().__init__(f"{code}: {message}" if code is not None else message)
        self.code = code
        self.message = message
        self.http_status = http_status


class RetryableError(BinanceError):
    """The request was not executed; sending it again is safe."""


class OutcomeUnknownError(BinanceError):
    """The request may or may not have executed; find out before doing anything else."""


class RateLimitedError(BinanceError):
    """Too much weight or too many orders; ``banned`` for a 418 IP ban (§6, §7)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_after_s: float | None = None,
        banned: bool = False,
    ):
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after_s = retry_after_s
        self.banned = banned


class RejectedError(BinanceError):
    """Final refusal. ``filter_name`` is set for "Filter failure: X" messages (-1013, -2010)."""

    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None):
        super().__init__(message, code=code, http_status=http_status)
        match = _FILTER_RE.search(message)
        self.filter_name: str | None = match.group(1) if match else None


class AuthError(RejectedError):
    """Key, signature or permission problem: no retry will help."""


class TimestampError(RejectedError):
    """-1021: the request's timestamp was outside recvWindow; resync time and retry once."""


class NoSuchOrderError(RejectedError):
    """-2013 / -2011 "Unknown order sent.": the venue knows no such (open) order.

    After an unknown outcome this proves nothing until the venue's clock passed the
    request's ``timestamp + recvWindow`` (DESIGN "Traps").
    """


class DuplicateOrderError(RejectedError):
    """-2010 "Duplicate order sent.": an open order already has this client order id."""


def _decode_body(body: bytes | str) -> ErrorBody | None:
    try:
        return msgspec.json.decode(body, type=ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def header(headers: Headers, name: str) -> str | None:
    """Case-insensitive header lookup over a mapping or (name, value) pairs."""
    wanted = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key.lower() == wanted:
            return value
    return None


def weight_from_headers(headers: Headers) -> int | None:
    """Request weight used this minute by our IP: ``X-MBX-USED-WEIGHT-1M`` (§7), or None."""
    value = header(headers, "X-MBX-USED-WEIGHT-1M")
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def retry_after_from_headers(headers: Headers) -> float | None:
    """``Retry-After`` in seconds (REST, §6), or None if absent or not a number."""
    value = header(headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_code(
    code: int | None,
    message: str,
    http_status: int | None,
    *,
    retry_after_s: float | None = None,
) -> BinanceError:
    """Map a venue error code (and the HTTP status, when there is one) to its class."""
    kw = {"code": code, "http_status": http_status}
    if http_status in (418, 429) or code in RATE_LIMIT_CODES:
        return RateLimitedError(
            message, retry_after_s=retry_after_s, banned=http_status == 418, **kw
        )
    if http_status is not None and http_status >= 500:
        # §6: a 5XX is "execution status UNKNOWN", whatever code it carries (-1001 too)
        return OutcomeUnknownError(message, **kw)
    if code in UNKNOWN_OUTCOME_CODES:
        return OutcomeUnknownError(message, **kw)
    if code in RETRYABLE_CODES:
        if http_status is None:  # no status: nothing proves it was refused before execution
            return OutcomeUnknownError(message, **kw)
        return RetryableError(message, **kw)  # a 4xx answer: refused before execution
    if code == TIMESTAMP_CODE:
        return TimestampError(message, **kw)
    if code in AUTH_CODES or http_status == 401:
        return AuthError(message, **kw)
    if code == NO_SUCH_ORDER_CODE or (code == CANCEL_REJECTED_CODE and "Unknown order" in message):
        return NoSuchOrderError(message, **kw)
    if code == NEW_ORDER_REJECTED_CODE and "Duplicate order" in message:
        return DuplicateOrderError(message, **kw)
    if http_status is None or 400 <= http_status < 500 or code is not None:
        return RejectedError(message, **kw)
    # A non-error status with a body that is not a Binance error: nothing is known.
    return OutcomeUnknownError(message, **kw)


def error_from_response(http_status: int, body: bytes | str, headers: Headers) -> BinanceError:
    """The error a REST response stands for (call it for any non-2xx answer).

    The body is ``{"code": .., "msg": ..}`` (§6) or, from a proxy / WAF / 5xx, anything.
    """
    parsed = _decode_body(body) if body else None
    if parsed is not None:
        code: int | None = parsed.code
        message = parsed.msg
    else:
        code = None
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        message = text.strip()[:200] or f"HTTP {http_status}"
    return error_from_code(
        code, message, http_status, retry_after_s=retry_after_from_headers(headers)
    )


def error_from_ws_api(status: int | None, error: ErrorBody) -> BinanceError:
    """The error of a WS-API reply ``{"status":..,"error":{"code","msg","data"}}`` (§6).

    There ``retryAfter`` is an epoch-ms instant in ``error.data`` next to ``serverTime``.
    """
    retry_after_s = None
    if isinstance(error.data, dict):
        until, now = error.data.get("retryAfter"), error.data.get("serverTime")
        if isinstance(until, int) and isinstance(now, int):
            retry_after_s = max(0.0, (until - now) / 1000)
    return error_from_code(error.code, error.msg, status, retry_after_s=retry_after_s)


def connection_error(message: str, *, request_sent: bool) -> BinanceError:
    """A transport failure: retryable if the request never left, unknown if it may have."""
    if request_sent:
        return OutcomeUnknownError(message)
    return RetryableError(message)


def classify(exc: BaseException) -> Classification:
    """What a retry loop should do about ``exc``; unknown exceptions are ``"unknown"``."""
    if isinstance(exc, RateLimitedError):
        return "rate_limited"
    if isinstance(exc, RetryableError):
        return "retry"
    if isinstance(exc, RejectedError):
        return "rejected"
    return "unknown"
