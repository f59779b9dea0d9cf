"""The process shell every service shares: configure logging once, install SIGINT /
SIGTERM handlers that set a stop event, run the service's ``main(stop)`` coroutine
under uvloop, and exit with a status that says how it ended.

A service's ``main`` reads top to bottom: connect, start its owned tasks, wait for
``stop``, cancel and await the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from shared.logging import configure_logging, get_logger
from shared.settings import Settings

log = get_logger(__name__)


def run_service(
    service: str,
    settings: Settings,
    main: Callable[[asyncio.Event], Awaitable[None]],
) -> int:
    configure_logging(
        service, settings.instance, fmt=settings.log_format.value, level=settings.log_level
    )
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - non-posix
        runner = asyncio.run

    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        log.info("service.starting")
        await main(stop)
        log.info("service.stopped")

    try:
        runner(wrapper())
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        log.exception("service.crashed", error=str(exc))
        return 1
    return 0


async def cancel_tasks(tasks: Iterable[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Cancel the tasks and await them (bounded), logging any that failed."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("task.failed", task=task.get_name(), error=repr(task.exception()))


async def supervise(stop: asyncio.Event, coros: dict[str, Coroutine[Any, Any, None]]) -> None:
    """Run named loops until ``stop`` is set or one of them ends; then cancel the rest.

    A loop that ends on its own is a bug (they all loop forever and handle their own
    errors), so it is logged and the service stops rather than limping on.
    """
    tasks = [asyncio.create_task(c, name=name) for name, c in coros.items()]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopper:
            exc = None if task.cancelled() else task.exception()
            log.error("loop.ended", task=task.get_name(), error=repr(exc))
    await cancel_tasks([*tasks, stopper])
    failed = [t for t in done if t is not stopper]
    if failed and not stop.is_set():
        sys.exit(1)
