"""Keeps secrets out of every text botfleet writes (logs, events, errors, health).

Two nets: every secret value loaded by the settings is registered here and replaced
wherever it appears in a string; and any mapping key that names a secret (key,
secret, token, signature, password, authorization) has its value masked whatever it is.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"
_SECRET_NAME = re.compile(
    r"(secret|api[_-]?key|apikey|token|signature|password|passphrase|private[_-]?key|authorization)",
    re.I,
)
# Secrets inside free text: a signed query string or an API-key header echoed in an error.
_INLINE = re.compile(
    r"(?i)(signature=|x-mbx-apikey[\"']?\s*[:=]\s*[\"']?|bearer\s+|api[_-]?secret[\"']?\s*[:=]\s*[\"']?|api[_-]?key[\"']?\s*[:=]\s*[\"']?|token[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9%+/=_\-.]{6,})"
)
_known: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach an output again (values shorter than 6 chars are ignored)."""
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact_text(text: str) -> str:
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return _INLINE.sub(lambda m: m.group(1) + MASK, text)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def redact(value: Any, name: str = "") -> Any:
    """A copy of ``value`` (str, mapping, sequence, anything) with every secret masked."""
    if name and is_secret_name(name) and value not in (None, "", False):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", errors="replace"))
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return (
            type(value)(redact(v) for v in value)
            if not isinstance(value, set)
            else [redact(v) for v in value]
        )
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value
