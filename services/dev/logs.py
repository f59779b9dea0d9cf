"""Prefixes and colours for the children's log lines: ``runner-2 | line``.

Pure. Each process name gets a stable colour from a small palette (by its position
in the plan), names are padded to one width so the lines align, and colour is only
used when the supervisor writes to a terminal. Lines are passed through the redactor
given by the supervisor, so a secret a child might print never reaches the screen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
# Readable on dark and light terminals; red is kept for the supervisor's own warnings.
PALETTE = (
    "\x1b[36m",  # cyan
    "\x1b[32m",  # green
    "\x1b[33m",  # yellow
    "\x1b[35m",  # magenta
    "\x1b[34m",  # blue
    "\x1b[96m",  # bright cyan
    "\x1b[92m",  # bright green
    "\x1b[93m",  # bright yellow
    "\x1b[95m",  # bright magenta
    "\x1b[94m",  # bright blue
)
RED = "\x1b[31m"
SUPERVISOR = "dev"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class Prefixer:
    """Formats one line of one named process."""

    def __init__(
        self,
        names: Iterable[str],
        *,
        colour: bool,
        redact: Callable[[str], str] = lambda s: s,
    ) -> None:
        ordered = list(dict.fromkeys([SUPERVISOR, *names]))
        self.width = max(len(n) for n in ordered)
        self.colour = colour
        self.redact = redact
        self.colours = {
            name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered) if name != SUPERVISOR
        }
        self.colours[SUPERVISOR] = BOLD

    def format(self, name: str, raw: bytes | str, *, alert: bool = False) -> str:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        text = self.redact(text.rstrip("\r\n"))
        if not self.colour:
            text = _ANSI.sub("", text)
            return f"{name:<{self.width}} | {text}"
        colour = RED if alert else self.colours.get(name, "")
        return f"{colour}{name:<{self.width}} |{RESET} {text}"


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)
