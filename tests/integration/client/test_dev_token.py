"""``botfleet dev`` refuses a token the API would refuse, before it starts anything
(the API used to restart forever on it while the banner said "running")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import base_env


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("short", "must be at least 16 characters"),
        (" " * 24, "must not contain white space"),
        ("pasted-token-0123456789\t", "must not contain white space"),
    ],
)
def test_dev_refuses_a_bad_token_before_starting_anything(
    tmp_path: Path, token: str, reason: str
) -> None:
    data_dir = tmp_path / "fleet"
    done = subprocess.run(
        [sys.executable, "-m", "services", "dev", "--data-dir", str(data_dir)],
        env=base_env({"BOTFLEET_API_TOKEN": token}),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"BOTFLEET_API_TOKEN {reason}" in done.stderr
    assert "running" not in done.stdout
    assert not data_dir.exists(), "nothing was prepared, let alone started"
