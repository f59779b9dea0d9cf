"""A private PostgreSQL server for the test session.

``initdb`` into a fresh temporary directory and ``postgres`` on a free TCP port of
127.0.0.1 with trust authentication, fsync off (a test database, not a durable one).
PostgreSQL refuses to run as root, and CI runs as root: then the server runs as
Debian's unprivileged ``postgres`` user, which owns the directory. The binaries are
Debian's (``/usr/lib/postgresql/<version>/bin``, installed by deploy/test-prereqs.sh)
or any ``initdb`` on PATH. Where neither exists but a Docker engine does,
testcontainers runs ``postgres:16``. Each test gets its own database
(:meth:`PostgresServer.create_database`), so tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.redis_server import free_port

SERVICE_USER = "postgres"


def find_bin(name: str) -> str | None:
    """The newest Debian PostgreSQL binary ``name``, else one on PATH."""
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    return shutil.which(name)


class PostgresServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="botfleet-pg-"))
        self.datadir = self.workdir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = SERVICE_USER if os.geteuid() == 0 else None
        self._dbs = 0

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> dict[str, object]:
        if self._user is None:
            return {}
        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self) -> PostgresServer:
        initdb, postgres = find_bin("initdb"), find_bin("postgres")
        if initdb is None or postgres is None:
            raise RuntimeError("PostgreSQL binaries not found: run deploy/test-prereqs.sh")
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        subprocess.run(
            [initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            cwd=self.workdir, **self._run_as(),  # type: ignore[arg-type]
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [postgres, "-D", str(self.datadir), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.workdir), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "postgres.log", "wb"),  # noqa: SIM115
            env=env, cwd=self.workdir, **self._run_as(),  # type: ignore[arg-type]
        )  # fmt: skip
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        isready = find_bin("pg_isready")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log()[-2000:]}")
            if isready is None:
                raise RuntimeError("pg_isready not found")
            done = subprocess.run(
                [isready, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q"],
                check=False,
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready within {timeout}s: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.workdir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def psql(self, sql: str, database: str = "postgres") -> str:
        psql = find_bin("psql")
        assert psql is not None
        done = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return done.stdout

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        self._dbs += 1
        name = f"t{os.getpid()}_{self._dbs}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown; fast enough with fsync off
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


class ContainerPostgres(PostgresServer):
    """The same interface over testcontainers' PostgreSQL (no local binaries)."""

    def __init__(self) -> None:
        from testcontainers.postgres import PostgresContainer

        self.container = PostgresContainer("postgres:16", username="postgres", password="pg")
        self._dbs = 0

    def start(self) -> ContainerPostgres:
        self.container.start()
        self.port = int(self.container.get_exposed_port(5432))
        self.host = self.container.get_container_host_ip()
        return self

    def url(self, database: str) -> str:
        return f"postgresql://postgres:pg@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        import asyncio

        import asyncpg

        self._dbs += 1
        name = f"t{os.getpid()}_{self._dbs}"

        async def create() -> None:
            conn = await asyncpg.connect(self.url("postgres"))
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        return self.url(name)

    def stop(self) -> None:
        self.container.stop()


@contextlib.contextmanager
def session_postgres() -> Iterator[PostgresServer]:
    server: PostgresServer
    if find_bin("initdb") is not None:
        server = PostgresServer().start()
    elif shutil.which("docker") is not None:
        server = ContainerPostgres().start()
    else:
        raise RuntimeError(
            "no PostgreSQL for the tests: run deploy/test-prereqs.sh (Debian's postgresql) "
            "or provide a Docker engine"
        )
    try:
        yield server
    finally:
        server.stop()
