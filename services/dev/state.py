"""What ``botfleet dev`` keeps in its data directory (``.botfleet/`` by default):

=====================  ==========================================================
``redis/``             the private redis-server's AOF (bots, trades, stats, orders)
``logs/NAME.log``      every child's output, one file per process, appended
``api-token``          the API's bearer token (0600), generated once
``sim-credentials``    the simulator's API key and secret (0600), generated once
``resume.json``        bots the last Ctrl-C stopped; started again on the next run
=====================  ==========================================================
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from services.dev.plan import Secrets


class DataDirError(Exception):
    """The data directory or one of its files is unusable."""


def prepare(data_dir: Path) -> None:
    for sub in (data_dir, data_dir / "redis", data_dir / "logs"):
        sub.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def load_or_create_token(data_dir: Path, given: str | None = None) -> str:
    """``given`` (BOTFLEET_API_TOKEN) if set, else the stored token, else a new one."""
    if given:
        return given
    path = data_dir / "api-token"
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) >= 16:
            return token
    token = secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return token


def load_or_create_sim_credentials(data_dir: Path) -> tuple[str, str]:
    path = data_dir / "sim-credentials"
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return str(data["api_key"]), str(data["api_secret"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataDirError(f"{path} is unreadable ({exc}); delete it to regenerate") from None
    key, secret = secrets.token_hex(32), secrets.token_hex(32)
    _write_private(path, json.dumps({"api_key": key, "api_secret": secret}) + "\n")
    return key, secret


def load_secrets(data_dir: Path, api_token: str | None = None) -> Secrets:
    key, secret = load_or_create_sim_credentials(data_dir)
    return Secrets(
        api_token=load_or_create_token(data_dir, api_token),
        sim_api_key=key,
        sim_api_secret=secret,
    )


def read_resume(data_dir: Path) -> list[str]:
    """Ids of the bots the previous run stopped on its way out."""
    path = data_dir / "resume.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return [str(b) for b in data] if isinstance(data, list) else []


def write_resume(data_dir: Path, bot_ids: list[str]) -> None:
    _write_private(data_dir / "resume.json", json.dumps(bot_ids) + "\n")
