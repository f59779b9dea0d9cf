"""What makes a bearer token acceptable: the one rule ``botfleet api`` enforces at
start-up and ``botfleet dev`` checks before it starts anything."""

from __future__ import annotations

MIN_TOKEN_LENGTH = 16


def token_problem(token: str) -> str | None:
    """Why ``token`` is refused, or None when it is acceptable."""
    # A bearer token travels in a header after one space: white space in it is a paste
    # error (or a token of spaces), never a strong secret.
    if any(c.isspace() for c in token):
        return "must not contain white space"
    if len(token) < MIN_TOKEN_LENGTH:
        return f"must be at least {MIN_TOKEN_LENGTH} characters"
    return None
