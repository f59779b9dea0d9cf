"""The ``botfleet api`` process: load settings, refuse an exposed address without a
token, build the app, and serve it with uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import sys

from services.api.settings import ApiSettings, InsecureBindError
from shared.logging import configure_logging, get_logger
from shared.settings import SettingsError, load_settings

log = get_logger(__name__)


def serve(host: str | None = None, port: int | None = None) -> int:
    try:
        settings = load_settings(ApiSettings, api_host=host, api_port=port)
        settings.check_exposure()
    except (SettingsError, InsecureBindError) as exc:
        print(f"botfleet api: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        "api", settings.instance, fmt=settings.log_format.value, level=settings.log_level
    )

    import uvicorn

    from services.api.app import create_app

    app = create_app(settings)
    log.info(
        "api.listening",
        host=settings.api_host,
        port=settings.api_port,
        auth=settings.token is not None,
    )
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
