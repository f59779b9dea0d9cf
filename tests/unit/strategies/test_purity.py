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
