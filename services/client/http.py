"""The client's HTTP side: one httpx call with the bearer token and a timeout; API
errors become a one-line message and exit status 1 (2 for a bad argument)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8000"


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}``; values parsed as JSON when they are."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        target = out
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out


@dataclass
class ApiClient:
    url: str
    token: str | None
    timeout: float = 75.0

    @classmethod
    def from_env(cls) -> ApiClient:
        return cls(
            url=os.environ.get("BOTFLEET_API_URL", DEFAULT_URL).rstrip("/"),
            token=os.environ.get("BOTFLEET_API_TOKEN") or None,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(
                method, self.url + path, headers=headers, timeout=self.timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            typer.echo(f"error: cannot reach the API at {self.url}: {exc}", err=True)
            raise typer.Exit(1) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:200]}
        if response.status_code >= 400:
            detail = body.get("detail", "") if isinstance(body, dict) else str(body)
            # detail carries the API's reasons ("strategy: unknown strategy 'macd'; ...")
            typer.echo(f"error: HTTP {response.status_code}: {detail}", err=True)
            raise typer.Exit(1)
        return body
