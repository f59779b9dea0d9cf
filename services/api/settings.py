"""Settings of ``botfleet api`` (prefix ``BOTFLEET_``, flags override).

The API refuses to start on a non-loopback address without ``BOTFLEET_API_TOKEN``:
:meth:`ApiSettings.check_exposure` raises :class:`InsecureBindError` then.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal

from pydantic import Field, SecretStr, field_validator

from shared.ledger.engine import DEFAULT_DATABASE_URL
from shared.settings import Settings
from shared.tokens import token_problem

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


class InsecureBindError(Exception):
    """The API would listen on a reachable address with no token."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the usual names of the loopback interface."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other host name may resolve to a reachable address


class ApiSettings(Settings):
    api_token: SecretStr | None = Field(
        default=None, description="bearer token; required unless bound to loopback"
    )
    api_host: str = Field(default="127.0.0.1", description="listen address")
    api_port: int = Field(default=8000, ge=0, le=65535, description="listen port")
    api_cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS (closed when empty)"
    )
    api_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024, description="request body size limit"
    )
    api_max_wait_s: float = Field(default=60.0, gt=0, description="longest accepted ?wait=")
    api_max_quote_allocation: Decimal = Field(
        default=Decimal(1_000_000_000),
        gt=0,
        description="largest quote_allocation a bot may be given (refused above, 400)",
    )
    # The gateway's own setting (same variable, BOTFLEET_GATEWAY_ALLOWED_SYMBOLS): a bot on
    # a symbol the gateway would refuse every order of is refused at creation instead.
    gateway_allowed_symbols: str = Field(
        default="", description="comma-separated symbols the gateway may trade ('' = any)"
    )
    trading_mode: str = Field(default="paper", description="paper or live: which balances to show")
    ledger_database_url: str = Field(
        default=DEFAULT_DATABASE_URL, description="the trade ledger's database (history reads)"
    )

    @field_validator("api_token")
    @classmethod
    def _token_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        if value.get_secret_value() == "":
            return None
        problem = token_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("trading_mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("paper", "live"):
            raise ValueError("must be paper or live")
        return value

    @property
    def allowed_symbols(self) -> frozenset[str]:
        return frozenset(
            s.strip().upper() for s in self.gateway_allowed_symbols.split(",") if s.strip()
        )

    @property
    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token is not None else None

    def check_exposure(self) -> None:
        if self.token is None and not is_loopback(self.api_host):
            raise InsecureBindError(
                f"refusing to listen on {self.api_host} without BOTFLEET_API_TOKEN: "
                "set a token (16+ characters) or bind to 127.0.0.1"
            )
