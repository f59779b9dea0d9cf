"""Sortable ids for bots and commands: 26 characters of Crockford base32, the first 10
from the epoch milliseconds and the last 16 from 80 random bits (the ULID layout), so
ids sort by creation time and contain no braces or colons (they go in hash tags)."""

from __future__ import annotations

import re
import secrets
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
_ID_RE = re.compile(ID_PATTERN)


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError("timestamp out of range")
    return _b32(ms, 10) + _b32(secrets.randbits(80), 16)


def is_id(value: str) -> bool:
    return bool(_ID_RE.match(value))
