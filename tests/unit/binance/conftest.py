"""Shared helpers of the Binance protocol tests: the recorded payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"


def fixture_bytes(name: str) -> bytes:
    """Raw bytes of ``tests/fixtures/binance/<name>`` (see SOURCES.md there)."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@pytest.fixture
def load() -> Any:
    return fixture_bytes
