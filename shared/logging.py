"""Structured logging, configured once per process at its edge.

Console renderer on a terminal, JSON lines otherwise (``BOTFLEET_LOG_FORMAT``). Every
line carries ``service`` and ``instance``; the last processor before rendering masks
secrets (:mod:`shared.redaction`). Everything else only calls :func:`get_logger`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from shared.redaction import redact


def _redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    return {k: redact(v, k) for k, v in event_dict.items()}


def configure_logging(
    service: str,
    instance: str,
    *,
    fmt: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    out = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    level_no = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service, instance=instance)
    # Libraries that use stdlib logging (uvicorn, websockets) go to the same place.
    logging.basicConfig(
        stream=out,
        level=max(level_no, logging.WARNING),
        format="%(name)s %(levelname)s %(message)s",
    )


def get_logger(name: str | None = None, **context: Any) -> Any:
    log = structlog.get_logger(name)
    return log.bind(**context) if context else log
