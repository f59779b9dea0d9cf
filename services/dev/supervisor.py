"""The asyncio shell of ``botfleet dev``: runs a :mod:`plan` as child processes.

Reads top to bottom: start the phases in order (each bounded-waited until ready),
create or resume the demo bots through the API, print the banner, wait for Ctrl-C;
then stop the bots through the API and the children group by group, and exit 0.

Every child has one owned watcher task that starts it, relays its output (prefixed,
coloured, redacted, and appended to ``logs/NAME.log``), and restarts it with the
capped backoff of :mod:`restart` when it dies without being asked to. Children run in
their own session, so the terminal's Ctrl-C reaches only the supervisor and the
shutdown happens in order; on Linux each child also gets SIGTERM if the supervisor
itself dies (``PR_SET_PDEATHSIG``), so no orphan keeps trading.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import sys
import time
from typing import IO, Any

from services.dev import demo, state
from services.dev.fleet_api import ApiError, FleetApi
from services.dev.logs import SUPERVISOR, Prefixer
from services.dev.plan import (
    REDIS,
    DevOptions,
    ProcessSpec,
    Readiness,
    Secrets,
    build_plan,
    child_env,
    redis_cli_command,
    secret_values,
    start_phases,
    stop_phases,
)
from services.dev.restart import RestartPolicy, on_exit
from shared import keys
from shared.redaction import redact_text, register_secret
from shared.redis import REDIS_ERRORS, Redis, create_redis, heartbeats, redacted_url

READY_TIMEOUT_S = 45.0
DEMO_TIMEOUT_S = 120.0
STOP_BOTS_TIMEOUT_S = 25.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One supervised process and its watcher's bookkeeping."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.failures = 0
        self.restarts = 0
        self.stopping = False
        self.gave_up = False
        self.exited = asyncio.Event()  # set while no process is running

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    def __init__(
        self,
        options: DevOptions,
        secrets: Secrets,
        *,
        out: IO[str] | None = None,
        colour: bool | None = None,
        policy: RestartPolicy | None = None,
        specs: list[ProcessSpec] | None = None,
    ) -> None:
        self.options = options
        self.secrets = secrets
        self.out = out or sys.stdout
        for value in secret_values(secrets):
            register_secret(value)
        self.specs = build_plan(options, secrets) if specs is None else specs
        use_colour = self.out.isatty() if colour is None else colour
        self.prefixer = Prefixer(
            [s.name for s in self.specs], colour=use_colour, redact=redact_text
        )
        self.policy = policy or RestartPolicy()
        self.children = {s.name: Child(s) for s in self.specs}
        self.stop_requested = asyncio.Event()
        self.force = asyncio.Event()
        self.fatal: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._logs: dict[str, IO[bytes]] = {}
        self._redis: Redis | None = None
        self._rng = random.Random()

    # --- output --------------------------------------------------------------------
    def say(self, text: str, *, alert: bool = False) -> None:
        self.out.write(self.prefixer.format(SUPERVISOR, text, alert=alert) + "\n")
        self.out.flush()

    def _relay(self, child: Child, line: bytes) -> None:
        self.out.write(self.prefixer.format(child.spec.name, line) + "\n")
        log = self._logs.get(child.spec.name)
        if log is not None:
            log.write(redact_text(line.decode("utf-8", errors="replace")).encode())
            if not line.endswith(b"\n"):
                log.write(b"\n")

    # --- entry point ---------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            state.prepare(self.options.data_dir)
            self._open_logs()
            self._redis = create_redis(self.options.redis_url, retries=1, socket_timeout=3.0)
            self.say(
                f"data in {self.options.data_dir}, Redis at {redacted_url(self.options.redis_url)}"
            )
            for phase in start_phases(self.specs):
                if self.stop_requested.is_set():
                    break
                for spec in phase:
                    child = self.children[spec.name]
                    self._own(self._watch(child), f"watch:{spec.name}")
                await self._wait_ready(phase)
                redis = self.children.get(REDIS)
                if redis is not None and redis.spec in phase and redis.failures > 0:
                    # Nothing works without it; a busy port or a bad AOF will not heal.
                    self.fatal = (
                        f"redis-server did not start; see {self.options.log_dir / 'redis.log'}"
                    )
                    self.stop_requested.set()
            if not self.stop_requested.is_set():
                self._banner()
                if "api" in self.options.services:
                    self._own(self._bots_up(), "demo-bots")
                await self.stop_requested.wait()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            # A second Ctrl-C during the orderly stop kills what is left.
            loop.add_signal_handler(signal.SIGINT, self.force.set)
            loop.add_signal_handler(signal.SIGTERM, self.force.set)
            try:
                await self._shutdown()
            finally:
                loop.remove_signal_handler(signal.SIGINT)
                loop.remove_signal_handler(signal.SIGTERM)
        if self.fatal:
            self.say(f"stopped: {self.fatal}", alert=True)
            return 1
        self.say("all processes stopped")
        return 0

    def _on_signal(self) -> None:
        if not self.stop_requested.is_set():
            self.say("stopping (Ctrl-C again to kill everything at once)")
        self.stop_requested.set()

    def _own(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _open_logs(self) -> None:
        for spec in self.specs:
            self._logs[spec.name] = open(  # noqa: SIM115 - closed in _shutdown
                self.options.log_dir / f"{spec.name}.log", "ab", buffering=0
            )

    def _banner(self) -> None:
        lines = ["botfleet dev is running; Ctrl-C stops everything."]
        if "api" in self.options.services:
            lines += [
                f"  dashboard  {self.options.api_url}/",
                f"  API token  {self.secrets.api_token}",
                f"  CLI        BOTFLEET_API_URL={self.options.api_url} BOTFLEET_API_TOKEN="
                f"$(cat {self.options.data_dir / 'api-token'}) botfleet bots ls",
            ]
        if "exchange-sim" in self.options.services:
            lines.append(
                f"  exchange   simulator at {self.options.sim_rest_url} (x{self.options.sim_speed:g} clock)"
            )
        lines += [
            f"  redis-cli  {redis_cli_command(self.options.redis_url)}",
            f"  logs       {self.options.log_dir}/<process>.log",
        ]
        for line in lines:
            self.say(line)

    # --- children ------------------------------------------------------------------
    async def _spawn(self, child: Child) -> asyncio.subprocess.Process:
        spec = child.spec
        if spec.service == REDIS:
            self.options.redis_dir.mkdir(parents=True, exist_ok=True)
        return await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child_env(os.environ, spec),
            # Not the operator's cwd: a stray .env there must not configure the fleet.
            cwd=str(self.options.data_dir),
            start_new_session=True,
            preexec_fn=_die_with_parent,
            limit=1 << 20,
        )

    async def _watch(self, child: Child) -> None:
        """Start, relay, restart with backoff until the supervisor stops."""
        spec = child.spec
        while not self.stop_requested.is_set():
            try:
                child.proc = await self._spawn(child)
            except OSError as exc:
                self.say(f"{spec.name}: cannot start {spec.argv[0]}: {exc}", alert=True)
                child.proc = None
                uptime = 0.0
                code: int | None = None
            else:
                child.exited.clear()
                child.started_at = time.monotonic()
                await self._pump(child, child.proc)
                code = await child.proc.wait()
                uptime = time.monotonic() - child.started_at
            child.exited.set()
            if child.stopping or self.stop_requested.is_set():
                return
            decision = on_exit(self.policy, child.failures, uptime, self._rng.random())
            child.failures = decision.failures
            if decision.give_up:
                child.gave_up = True
                self.say(
                    f"{spec.name} exited ({_describe(code)}) {decision.failures} times in a row; giving up on it",
                    alert=True,
                )
                if spec.service == REDIS:
                    self.fatal = "the private redis-server keeps dying"
                    self.stop_requested.set()
                return
            self.say(
                f"{spec.name} exited unexpectedly ({_describe(code)}) after {uptime:.1f}s; "
                f"restarting in {decision.delay_s:.1f}s (failure {decision.failures})",
                alert=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), decision.delay_s)
            child.restarts += 1

    async def _pump(self, child: Child, proc: asyncio.subprocess.Process) -> None:
        stream = proc.stdout
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the limit: relay it in pieces
                line = await stream.read(1 << 16)
            if not line:
                return
            self._relay(child, line)

    # --- readiness -----------------------------------------------------------------
    async def _wait_ready(self, phase: list[ProcessSpec]) -> None:
        waiter: asyncio.Future[Any] = asyncio.gather(*(self._ready(spec) for spec in phase))
        stopper: asyncio.Future[Any] = asyncio.ensure_future(self.stop_requested.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, stopper}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
        if waiter not in done:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            if not self.stop_requested.is_set():
                names = ", ".join(s.name for s in phase)
                self.say(f"not ready after {READY_TIMEOUT_S:.0f}s: {names}; going on", alert=True)

    async def _ready(self, spec: ProcessSpec) -> None:
        """Until the child answers its probe; a child that crashes while starting is
        not waited for (its watcher restarts it), so the rest of the fleet comes up."""
        child = self.children[spec.name]
        delay = 0.05
        while not await self._probe(spec):
            if child.failures > 0 or child.gave_up:
                self.say(f"{spec.name} crashed while starting; going on without waiting for it")
                return
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)
        self.say(f"{spec.name} is up")

    async def _probe(self, spec: ProcessSpec) -> bool:
        if spec.ready is Readiness.TCP:
            host, _, port = spec.ready_target.rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
            except (OSError, TimeoutError):
                return False
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        assert self._redis is not None
        try:
            if spec.ready is Readiness.REDIS_PING:
                return bool(await self._redis.ping())
            if await self._redis.exists(keys.health(spec.ready_target, spec.name)):
                return True
            if await heartbeats(self._redis, spec.ready_target):
                return True
        except REDIS_ERRORS:
            return False
        return False

    # --- bots through the API -----------------------------------------------------
    async def _bots_up(self) -> None:
        """Create the missing demo bots and start them and the bots the last Ctrl-C
        stopped; retried with capped backoff while the fleet warms up, bounded."""
        api = FleetApi(self.options.api_url, self.secrets.api_token)
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        delay = 0.5
        try:
            if self.options.demo:
                await self._wait_symbols(demo.demo_symbols(), deadline)
            while True:
                try:
                    await self._create_and_start(api)
                    return
                except ApiError as exc:
                    if not exc.retryable or time.monotonic() + delay > deadline:
                        self.say(f"demo bots: {exc}", alert=True)
                        return
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))
                delay = min(5.0, delay * 2)
        finally:
            await api.aclose()

    async def _wait_symbols(self, symbols: tuple[str, ...], deadline: float) -> None:
        """Bots are validated against ``exchange:symbols``, which ingestion fills."""
        assert self._redis is not None
        while time.monotonic() < deadline:
            with contextlib.suppress(*REDIS_ERRORS):
                known: list[Any] = await self._redis.hmget(  # type: ignore[misc]
                    keys.EXCHANGE_SYMBOLS, list(symbols)
                )
                if all(v is not None for v in known):
                    return
            await asyncio.sleep(0.5)

    async def _create_and_start(self, api: FleetApi) -> None:
        bots = await api.list_bots()
        by_id = {b.id: b for b in bots}
        to_start = [b for b in state.read_resume(self.options.data_dir) if b in by_id]
        if self.options.demo:
            for config in demo.missing_demo_bots(b.name for b in bots):
                created = await api.create_bot(config)
                self.say(
                    f"created demo bot {created.name} ({config['strategy']} on {config['symbol']})"
                )
                by_id[created.id] = created
                to_start.append(created.id)
        for bot_id in dict.fromkeys(to_start):
            if by_id[bot_id].desired != "running":
                await api.start_bot(bot_id)
                self.say(f"started bot {by_id[bot_id].name or bot_id}")
        state.write_resume(self.options.data_dir, [])

    async def _stop_bots(self) -> None:
        """Stop every running bot through the API (it closes positions), and remember
        them so the next ``botfleet dev`` starts them again."""
        api_child = next((c for c in self.children.values() if c.spec.service == "api"), None)
        if api_child is None or not api_child.running or self.force.is_set():
            return
        api = FleetApi(self.options.api_url, self.secrets.api_token)
        try:
            bots = await api.list_bots()
            running = [b for b in bots if b.desired == "running"]
            if not running:
                return
            self.say(f"stopping {len(running)} bot(s) through the API")
            state.write_resume(
                self.options.data_dir,
                list(
                    dict.fromkeys(
                        [*state.read_resume(self.options.data_dir), *(b.id for b in running)]
                    )
                ),
            )
            results: list[Any] = await asyncio.gather(
                *(api.stop_bot(b.id, wait_s=int(STOP_BOTS_TIMEOUT_S) - 5) for b in running),
                return_exceptions=True,
            )
            for bot, result in zip(running, results, strict=True):
                if isinstance(result, ApiError):
                    self.say(f"bot {bot.name or bot.id} did not stop: {result}", alert=True)
        except ApiError as exc:
            self.say(f"could not stop the bots through the API: {exc}", alert=True)
        finally:
            await api.aclose()

    # --- shutdown ------------------------------------------------------------------
    async def _shutdown(self) -> None:
        self.stop_requested.set()
        for task in self._tasks:
            if task.get_name() == "demo-bots":
                task.cancel()
        with contextlib.suppress(TimeoutError):
            await self._interruptible(self._stop_bots(), STOP_BOTS_TIMEOUT_S)
        for group in stop_phases(self.specs):
            await asyncio.gather(*(self._stop_child(self.children[s.name]) for s in group))
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self.say(
                    f"internal task {task.get_name()} failed: {task.exception()!r}", alert=True
                )
        if self._redis is not None:
            await self._redis.aclose()
        for log in self._logs.values():
            log.close()

    async def _interruptible(self, coro: Any, timeout: float) -> None:
        task = asyncio.ensure_future(coro)
        force = asyncio.ensure_future(self.force.wait())
        try:
            await asyncio.wait({task, force}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            force.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _stop_child(self, child: Child) -> None:
        child.stopping = True
        proc = child.proc
        if proc is None or proc.returncode is not None:
            return
        self.say(f"stopping {child.spec.name}")
        _signal(proc, signal.SIGTERM)
        try:
            await self._interruptible(proc.wait(), child.spec.stop_timeout_s)
        finally:
            if proc.returncode is None:
                self.say(f"{child.spec.name} did not stop in time; killing it", alert=True)
                _signal(proc, signal.SIGKILL)
                await proc.wait()
        await child.exited.wait()
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
            self.say(f"{child.spec.name} exited with {_describe(proc.returncode)}", alert=True)


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def _describe(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def run(options: DevOptions, secrets: Secrets, **kwargs: Any) -> int:
    """Run the fleet until Ctrl-C; the process exit status."""
    supervisor = Supervisor(options, secrets, **kwargs)
    return asyncio.run(supervisor.run())
