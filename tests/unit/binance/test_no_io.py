"""shared.binance is pure: importing all of it pulls in no network, Redis or event loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FORBIDDEN = (
    "asyncio",
    "redis",
    "httpx",
    "aiohttp",
    "websockets",
    "socket",
    "ssl",
    "requests",
    "urllib.request",
)

_PROBE = f"""
import importlib, json, pkgutil, sys
import shared.binance
names = ["shared.binance"] + [m.name for m in pkgutil.walk_packages(shared.binance.__path__, "shared.binance.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": names, "loaded": [m for m in {FORBIDDEN!r} if m in sys.modules]}}))
"""


def test_importing_every_binance_module_loads_no_io_library() -> None:
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=root, capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert len(report["modules"]) >= 10, report["modules"]
    assert report["loaded"] == []
