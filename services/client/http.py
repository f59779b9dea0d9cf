"""The client's HTTP side: one httpx call with the bearer token and a timeout; API
errors become a one-line message and exit status 1 (2 for a bad argument)."""

from __future__ import annotations

import json
import os
import re
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


ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")  # services/api/ids.py's ULID alphabet
PAGE = 1000


def print_json(value: Any) -> None:
    """``--json`` output: the API's answer as it came, one document on stdout."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


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

    def bot_id(self, ref: str) -> str:
        """A bot id from an id or a name (names are unique, compared ignoring case and
        surrounding spaces, as the API compares them)."""
        found = self.find_bot_id(ref)
        if found is None:
            typer.echo(f"error: no bot with the id or name {ref!r}", err=True)
            raise typer.Exit(1)
        return found

    def find_bot_id(self, ref: str) -> str | None:
        """The id of the bot named ``ref`` (or ``ref`` itself, an id), None if none is."""
        if ID_RE.match(ref):
            return ref
        wanted = ref.strip().casefold()
        offset = 0
        while True:
            page = self.call("GET", "/api/v1/bots", params={"offset": offset, "limit": PAGE})
            for bot in page["items"]:
                if bot["name"].strip().casefold() == wanted:
                    return str(bot["id"])
            offset += PAGE
            if offset >= page["total"] or not page["items"]:
                return None
