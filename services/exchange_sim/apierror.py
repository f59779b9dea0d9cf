"""The one exception the simulator's cores raise to answer a request with a Binance error.

``ApiError(code, msg, status)`` becomes ``{"code": code, "msg": msg}`` with HTTP
``status`` (reference §6). Messages are Binance's own wording, so a client's error
mapping (``shared.binance.errors.error_from_response``) sees what it would see live.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def mandatory(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal_chars(name: str, legal: str) -> ApiError:
    return ApiError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def rejected(msg: str) -> ApiError:
    return ApiError(-2010, msg)


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
INVALID_SYMBOL = ApiError(-1121, "Invalid symbol.")
NO_SUCH_ORDER = ApiError(-2013, "Order does not exist.")
UNKNOWN_ORDER = ApiError(-2011, "Unknown order sent.")
BAD_SIGNATURE = ApiError(-1022, "Signature for this request is not valid.")
BAD_API_KEY_FMT = ApiError(-2014, "API-key format invalid.", 401)
REJECTED_KEY = ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
