"""The supervisor shell with real child processes (small Python scripts standing in
for the services, and a real redis-server): a crashing child is reported, restarted
with backoff and given up on; output is prefixed, logged per process and redacted;
Ctrl-C stops the children in order and the run ends with 0."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from services.dev.plan import DevOptions, ProcessSpec, Readiness, Secrets, build_plan
from services.dev.restart import RestartPolicy
from services.dev.supervisor import Supervisor
from tests.support.redis_server import free_port

SECRETS = Secrets(api_token="t" * 24, sim_api_key="k" * 24, sim_api_secret="supersecretvalue42")

_SERVER = """
import signal, socket, sys
name, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def bye(*_):
    print(name, "got SIGTERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen()
print(name, "listening; secret is", secret, flush=True)
while True:
    s.accept()[0].close()
"""


def _server(name: str, service: str, phase: int) -> ProcessSpec:
    port = free_port()
    return ProcessSpec(
        name=name,
        service=service,
        argv=(sys.executable, "-c", _SERVER, name, str(port), SECRETS.sim_api_secret),
        env={},
        phase=phase,
        ready=Readiness.TCP,
        ready_target=f"127.0.0.1:{port}",
    )


async def _until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_crash_restart_redaction_and_ordered_stop_with_exit_zero(tmp_path: Path) -> None:
    options = DevOptions(data_dir=tmp_path, services=(), redis_port=free_port(), demo=False)
    redis = build_plan(options, SECRETS)  # only the private redis-server
    crasher = ProcessSpec(
        name="crasher",
        service="ingestion",
        argv=(sys.executable, "-c", "print('boom', flush=True); raise SystemExit(3)"),
        env={},
        phase=2,
        ready=Readiness.TCP,
        ready_target=f"127.0.0.1:{free_port()}",  # never answers: it crashes first
    )
    specs = [*redis, crasher, _server("gateway", "gateway", 2), _server("runner-1", "runner", 3)]
    out = io.StringIO()
    policy = RestartPolicy(base_s=0.05, cap_s=0.1, max_failures=3)
    supervisor = Supervisor(options, SECRETS, out=out, colour=False, policy=policy, specs=specs)
    run = asyncio.create_task(supervisor.run())

    await _until(lambda: "botfleet dev is running" in out.getvalue())
    await _until(lambda: "giving up on it" in out.getvalue())
    assert supervisor.children["crasher"].restarts == 3
    assert "exited unexpectedly (exit code 3)" in out.getvalue()
    assert supervisor.children["runner-1"].running and supervisor.children["gateway"].running

    supervisor._on_signal()  # what Ctrl-C does
    assert await asyncio.wait_for(run, 30) == 0

    text = out.getvalue()
    lines = text.splitlines()
    assert "crasher  | boom" in lines
    assert "runner-1 | runner-1 got SIGTERM" in lines
    assert SECRETS.sim_api_secret not in text, "a child's secret reached the terminal"
    assert "secret is ***" in text
    order = [
        line.split("stopping ", 1)[1] for line in lines if line.startswith("dev      | stopping ")
    ]
    assert order[1:] == ["runner-1", "gateway", "redis"]  # order[0]: the Ctrl-C notice
    assert text.rstrip().endswith("all processes stopped")
    assert "boom" in (tmp_path / "logs" / "crasher.log").read_text()
    assert SECRETS.sim_api_secret not in (tmp_path / "logs" / "gateway.log").read_text()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()  # AOF on


async def test_a_redis_server_that_cannot_start_stops_the_fleet_with_status_1(
    tmp_path: Path,
) -> None:
    options = DevOptions(data_dir=tmp_path, services=(), redis_port=free_port(), demo=False)
    (redis,) = build_plan(options, SECRETS)
    broken = ProcessSpec(
        name=redis.name,
        service=redis.service,
        argv=(sys.executable, "-c", "print('Address already in use'); raise SystemExit(1)"),
        env={},
        phase=0,
        ready=redis.ready,
        ready_target=redis.ready_target,
    )
    later = _server("runner-1", "runner", 3)
    out = io.StringIO()
    policy = RestartPolicy(base_s=0.05, cap_s=0.1)
    supervisor = Supervisor(
        options, SECRETS, out=out, colour=False, policy=policy, specs=[broken, later]
    )
    assert await asyncio.wait_for(supervisor.run(), 30) == 1
    assert "redis-server did not start" in out.getvalue()
    assert supervisor.children["runner-1"].proc is None  # the next phase never started
