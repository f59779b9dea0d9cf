"""Bearer-token authentication: one guard on the whole app.

The token is compared in constant time (``hmac.compare_digest``). Routes marked
``opt={"public": True}`` (liveness, the dashboard's static shell, which holds no fleet
data) and the OpenAPI documentation skip it; every other route needs
``Authorization: Bearer <token>``. With no token configured (allowed only on loopback,
see :mod:`services.api.settings`) nothing is checked.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

PUBLIC = {"public": True}


def token_matches(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def make_guard(token: str | None, public_prefixes: tuple[str, ...]) -> Any:
    # async: Litestar runs a sync guard in a worker thread, a thread hop per request.
    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if token is None or handler.opt.get("public"):
            return
        if connection.scope["path"].startswith(public_prefixes):
            return
        if not token_matches(connection.headers.get("authorization"), token):
            raise NotAuthorizedException(
                "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    return guard
