"""The ``botfleet api`` process: load settings, refuse an exposed address without a
token, build the app, and serve it with uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator

from services.api.settings import ApiSettings, InsecureBindError
from shared.logging import get_logger
from shared.settings import SettingsError, load_settings

log = get_logger(__name__)


def serve(host: str | None = None, port: int | None = None) -> int:
    try:
        settings = load_settings(ApiSettings, api_host=host, api_port=port)
        settings.check_exposure()
    except (SettingsError, InsecureBindError) as exc:
        print(f"botfleet api: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from services.api.app import create_app
    from shared.service import run_service

    class Server(uvicorn.Server):
        """uvicorn without its own signal handling: :func:`run_service` owns the signals."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async def main(stop: asyncio.Event) -> None:
        app = create_app(settings)
        server = Server(
            uvicorn.Config(
                app,
                host=settings.api_host,
                port=settings.api_port,
                http="httptools",
                access_log=False,
                log_config=None,
                timeout_graceful_shutdown=5,
                lifespan="on",
            )
        )
        log.info(
            "api.listening",
            host=settings.api_host,
            port=settings.api_port,
            auth=settings.token is not None,
        )
        serving = asyncio.create_task(server.serve(), name="uvicorn")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
        stopping.cancel()
        if not server.started:
            raise RuntimeError(f"could not serve on {settings.api_host}:{settings.api_port}")

    return run_service("api", settings, main)
