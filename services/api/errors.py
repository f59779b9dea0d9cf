"""The API's errors and the one place that maps every error to an HTTP answer.

::

    ApiError                 (status, detail, field)
    ├── BadRequest           400  input that cannot be understood (field named)
    ├── InvalidInput         422  input understood but not acceptable (field named)
    ├── NotFound             404  unknown bot, symbol, order, strategy
    ├── Conflict             409  a transition not allowed now
    └── Unavailable          503  a needed service is down (reason given)

Foreign errors are mapped here too: Redis connection errors and timeouts become 503
("redis unreachable"), pydantic ``ValidationError`` becomes 400 with each field, as
Litestar's own validation errors do (400: the input breaks the schema; 422: it is
well-formed but the world refuses it, e.g. a symbol that is not trading). Every
error body has the same shape: ``{"status_code", "detail", "field"?, "errors"?}`` where
each item of ``errors`` is ``{"field", "message", "source"?}`` and ``detail`` joins the
reasons (``"strategy: unknown strategy 'macd'; known: ..."``, worded by
:mod:`shared.validation`, as the backtester words them).
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.logging import get_logger
from shared.validation import field_errors, reason

log = get_logger(__name__)


class ApiError(Exception):
    status_code = 500

    def __init__(
        self, detail: str, *, field: str | None = None, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.errors = errors


class BadRequest(ApiError):
    status_code = 400


class InvalidInput(ApiError):
    status_code = 422


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Unavailable(ApiError):
    status_code = 503


def _body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    body = _body(exc.status_code, exc.detail, field=exc.field, errors=exc.errors)
    headers = {"Retry-After": "2"} if exc.status_code == 503 else None
    return Response(body, status_code=exc.status_code, media_type=MediaType.JSON, headers=headers)


def _redis_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("api.redis_unreachable", path=request.url.path, error=type(exc).__name__)
    return Response(
        _body(503, "redis unreachable: the fleet's state cannot be read or written now"),
        status_code=503,
        media_type=MediaType.JSON,
        headers={"Retry-After": "2"},
    )


def _validation_error(_: Request[Any, Any, Any], exc: ValidationError) -> Response[Any]:
    errors = field_errors(exc)
    first = errors[0]["field"] if errors else None
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid input"
    return Response(
        _body(400, detail, field=first, errors=errors), status_code=400, media_type=MediaType.JSON
    )


def litestar_field_errors(extra: Any) -> list[dict[str, Any]]:
    """Litestar's ``{"message", "key", "source"?}`` items as ``{"field", "message",
    "source"?}``, the one item shape every error body uses."""
    if not isinstance(extra, list):
        return []
    out = []
    for item in extra:
        if not isinstance(item, dict) or "message" not in item:
            continue
        message = reason(str(item["message"]))
        error: dict[str, Any] = {"field": str(item.get("key", "")), "message": message}
        source = item.get("source")
        if source:  # a ParamType enum (str-valued) or a plain string
            error["source"] = str(getattr(source, "value", source))
        out.append(error)
    return out


def _http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    errors = litestar_field_errors(exc.extra)
    field = errors[0]["field"] if errors else None
    detail = exc.detail
    if errors:
        # The real reasons, not Litestar's generic "Validation failed for POST /x".
        detail = "; ".join(
            f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors
        )
    return Response(
        _body(exc.status_code, detail, field=field or None, errors=errors or None),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("api.unhandled", path=request.url.path, error=type(exc).__name__)
    return Response(_body(500, "internal error"), status_code=500, media_type=MediaType.JSON)


def exception_handlers() -> dict[Any, Any]:
    handlers: dict[Any, Any] = {
        ApiError: _api_error,
        ValidationError: _validation_error,
        HTTPException: _http_exception,
        Exception: _unexpected,
    }
    for cls in (RedisConnectionError, RedisTimeoutError):
        handlers[cls] = _redis_error
    return handlers
