"""Real botfleet processes for integration, end-to-end and fault tests.

``BotfleetProcess`` runs ``botfleet <args>`` (the installed console script, through
this interpreter) with a clean environment plus the given variables, writes its
output to a log file the failing test prints, and can be stopped gracefully, killed
with SIGKILL, or restarted with the same arguments.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

_PASS_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env["BOTFLEET_LOG_FORMAT"] = "json"
    if extra:
        env.update(extra)
    return env


class BotfleetProcess:
    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = args
        self.log_path = log_path
        self.env = base_env(env)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> BotfleetProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file = log_file
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services", *self.args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.args[0]} exited ({self.proc and self.proc.returncode}) waiting for {what}:\n{self.log_text()[-4000:]}"
                )
            with contextlib.suppress(Exception):
                if condition():
                    return
            time.sleep(0.05)
        raise TimeoutError(
            f"{self.args[0]}: {what} not seen within {timeout}s:\n{self.log_text()[-4000:]}"
        )

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        self.wait_for(lambda: httpx.get(url, timeout=1.0).status_code < 500, timeout, f"HTTP {url}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.proc.returncode
        self._close_log()
        return code

    def interrupt(self, timeout: float = 30.0) -> int:
        """SIGINT (Ctrl-C) and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL the whole process group (kill -9, no chance to clean up)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._close_log()

    def restart(self) -> BotfleetProcess:
        self.stop()
        return self.start()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
