"""Settings from the environment (prefix ``BOTFLEET_``, optional ``.env``), one base model
with the variables of DESIGN.md "Configuration" that every service reads, and a
subclass per service in that service's package (``services/<name>/settings.py``).

Secrets are ``SecretStr`` and are registered with the log redactor the moment they
are loaded. :func:`load_settings` turns a validation failure into
:class:`SettingsError`, whose message names every offending variable.
"""

from __future__ import annotations

import os
import socket
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.binance.endpoints import urls_for
from shared.redaction import register_secret


class BinanceEnv(StrEnum):
    SIM = "sim"
    TESTNET = "testnet"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    AUTO = "auto"
    CONSOLE = "console"
    JSON = "json"


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """What every botfleet process reads."""

    model_config = SettingsConfigDict(
        env_prefix="BOTFLEET_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis (redis://, rediss:// or unix://)"
    )
    binance_env: BinanceEnv = Field(
        default=BinanceEnv.TESTNET, description="sim, testnet or production"
    )
    binance_rest_url: str | None = Field(default=None, description="explicit REST endpoint")
    binance_ws_url: str | None = Field(
        default=None, description="explicit market WebSocket endpoint"
    )
    log_format: LogFormat = LogFormat.AUTO
    log_level: str = "info"
    instance: str = Field(default_factory=default_instance, description="this process's name")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.lower()
        if level not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError("must be one of debug, info, warning, error, critical")
        return level

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not value or any(c in value for c in " {}:"):
            raise ValueError("must be non-empty without spaces, braces or colons")
        return value

    # Default endpoints of each BinanceEnv come from the one URL table,
    # shared.binance.endpoints (reference §1; ``sim``: `botfleet exchange-sim`'s default).
    @property
    def rest_url(self) -> str:
        return (self.binance_rest_url or urls_for(self.binance_env.value).rest).rstrip("/")

    @property
    def ws_url(self) -> str:
        return (self.binance_ws_url or urls_for(self.binance_env.value).ws_streams).rstrip("/")

    def model_post_init(self, __context: Any) -> None:
        for value in self.__dict__.values():
            if isinstance(value, SecretStr):
                register_secret(value.get_secret_value())


class SettingsError(Exception):
    """Settings are invalid; the message names each variable and what is wrong."""


S = TypeVar("S", bound=Settings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings from the environment plus command-line ``overrides`` (None ignored)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{prefix}{field.upper()}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
