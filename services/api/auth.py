"""Bearer-token authentication: one check (an ASGI middleware) on the whole app.

The token is compared in constant time (``hmac.compare_digest``). Routes marked
``opt={"public": True}`` (liveness, the dashboard's static shell, which holds no fleet
data) and the OpenAPI documentation skip it; every other route needs
``Authorization: Bearer <token>``. With no token configured (allowed only on loopback,
see :mod:`services.api.settings`) nothing is checked.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.exceptions import NotAuthorizedException

PUBLIC = {"public": True}


def token_matches(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def make_auth(token: str | None, public_prefixes: tuple[str, ...]) -> Any:
    """The check as an ASGI middleware (it runs after routing, so the route's ``opt`` is
    in the scope): a Litestar guard would be handed a copy of the route handler on every
    request, a cost that showed on the hottest reads."""

    def middleware(app: Any) -> Any:
        async def check(scope: Any, receive: Any, send: Any) -> None:
            if token is not None and scope["type"] in ("http", "websocket"):
                handler = scope.get("route_handler")
                public = handler is not None and handler.opt.get("public")
                if not public and not scope["path"].startswith(public_prefixes):
                    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
                    if not token_matches(header.decode("latin-1"), token):
                        raise NotAuthorizedException(
                            "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"},
                        )
            await app(scope, receive, send)

        return check

    return middleware
