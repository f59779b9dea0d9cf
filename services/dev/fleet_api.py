"""The supervisor's HTTP client of ``botfleet api``: list, create, start and stop bots,
exactly as a user would (bearer token, JSON bodies). Answers are parsed here into
:class:`BotRef`; every call has a timeout and errors become :class:`ApiError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

BOTS = "/api/v1/bots"


class ApiError(Exception):
    """A call failed; ``retryable`` when the API was unreachable or answered 5xx/409/503."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class BotRef:
    id: str
    name: str
    desired: str
    status: str


def _bot(raw: Any) -> BotRef:
    if not isinstance(raw, dict):
        raise ApiError(f"unexpected bot entry {type(raw).__name__}", retryable=False)
    config_raw = raw.get("config")
    config: dict[str, Any] = config_raw if isinstance(config_raw, dict) else {}
    name = raw.get("name") or config.get("name") or ""
    return BotRef(
        id=str(raw.get("id", "")),
        name=str(name),
        desired=str(raw.get("desired", "")),
        status=str(raw.get("status", "")),
    )


def _items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("items", "bots", "data", "results"):
            if isinstance(body.get(key), list):
                return list(body[key])
    raise ApiError("unexpected bot list shape", retryable=False)


class FleetApi:
    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=3.0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"{method} {path}: {type(exc).__name__}", retryable=True) from exc
        if response.status_code >= 400:
            detail = response.text[:300]
            retryable = response.status_code >= 500 or response.status_code in (409, 429)
            raise ApiError(
                f"{method} {path} -> {response.status_code}: {detail}",
                status=response.status_code,
                retryable=retryable,
            )
        return response.json() if response.content else None

    async def list_bots(self) -> list[BotRef]:
        bots: list[BotRef] = []
        offset = 0
        while True:
            body = await self._call("GET", BOTS, params={"limit": 200, "offset": offset})
            page = [_bot(b) for b in _items(body)]
            bots.extend(page)
            total = body.get("total") if isinstance(body, dict) else None
            if len(page) < 200 or (isinstance(total, int) and len(bots) >= total):
                return bots
            offset += len(page)

    async def create_bot(self, config: dict[str, Any]) -> BotRef:
        return _bot(await self._call("POST", BOTS, json=config))

    async def start_bot(self, bot_id: str) -> None:
        await self._call("POST", f"{BOTS}/{bot_id}/start")

    async def stop_bot(self, bot_id: str, wait_s: int = 10) -> None:
        await self._call("POST", f"{BOTS}/{bot_id}/stop", params={"wait": wait_s})
