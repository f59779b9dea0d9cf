"""How a refused input is worded, the same everywhere: pydantic's errors as
``{"field", "message"}`` items (the API's error bodies) and as one line
``field: message; ...`` (the API's ``detail``, the backtester's refusals).

Pydantic prefixes the message of a validator's ``ValueError`` with "Value error, "; a
person wants the reason alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

_PREFIX = "Value error, "


def reason(message: str) -> str:
    """A validator's message without pydantic's "Value error, " prefix."""
    return message.removeprefix(_PREFIX)


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """Pydantic errors as ``{"field": "sizing.quote_amount", "message": ...}``."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in err["loc"]]
        field = ".".join([prefix, *loc] if prefix else loc)
        out.append({"field": field, "message": reason(err["msg"])})
    return out


def describe(exc: ValidationError) -> str:
    """Every reason on one line: ``field: message; field: message``."""
    return "; ".join(f"{e['field']}: {e['message']}" for e in field_errors(exc))
