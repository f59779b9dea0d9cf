"""shared.strategies is pure: importing it pulls in no I/O or async library."""

from __future__ import annotations

import subprocess
import sys


def test_strategies_import_no_io_libraries() -> None:
    code = (
        "import sys, shared.strategies\n"
        "bad = {'asyncio', 'redis', 'httpx', 'websockets', 'aiohttp', 'structlog'} & set(sys.modules)\n"
        "print(','.join(sorted(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_talib_is_the_tests_oracle_only() -> None:
    """TA-Lib (a dev extra) is never imported by product code."""
    from pathlib import Path

    root = Path(__file__).parents[3]
    offenders = [
        str(p.relative_to(root))
        for top in ("shared", "services", "examples")
        for p in (root / top).rglob("*.py")
        if "import talib" in p.read_text() or "from talib" in p.read_text()
    ]
    assert offenders == []
