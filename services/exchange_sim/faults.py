"""The fault injector's state: what is currently broken on purpose, and the dice.

Owns the faults a test can switch on (flags at start, ``/sim/faults`` at run time):

- ``latency_ms``: added to every REST answer;
- ``error_rate``: share of REST requests answered ``500`` without being executed;
- ``order_unknown_rate``: share of accepted order placements whose answer is lost:
  the order exists, the client gets ``503 -1007`` (``unknown_mode="503"``), ``500
  -1001`` (``unknown_mode="500"``: the "internal error, retry" a client must not take
  at its word, reference §6) or no answer until it times out
  (``unknown_mode="timeout"``, held for ``timeout_s``);
- ``revoked_keys``: API keys whose every signed request (REST, WS API, listenKey) is
  answered ``401 -2015`` as Binance answers a deleted key or a lost permission;
- ``clock_offset_ms``: the exchange clock runs this far ahead of (negative: behind)
  where it would be; while it is set, signed requests' timestamps are checked against
  the exchange clock only (Binance's rule), so a client that does not sync with
  ``GET /api/v3/time`` gets ``-1021``;
- ``drop_kline_rate``: share of kline messages not sent to a connection;
- ``frozen``: symbols whose market shows nothing new (``["*"]`` = all);
- one-shot actions (not state): ``rate_limit_s`` answers every REST request ``429
  -1003`` for that many wall seconds, ``ban_s`` answers ``418`` (an IP ban) for that
  many (both with ``Retry-After``; the deadlines live in :mod:`.limits`);
  ``half_open`` turns every WebSocket connection open at that moment half-open (the
  socket stays open; no frame, no ping, no pong, no answer comes from the server);
  ``disconnect_ws`` closes every market-stream and
  WS-API connection; ``server_shutdown`` sends the ``serverShutdown`` event to every
  connection open at that moment and closes those (only those) after a grace of
  ``shutdown_grace_s`` wall seconds (default: ``--shutdown-grace-s``), during which
  they keep streaming.

The dice are seeded (``--seed``), so a test run is reproducible.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

UNKNOWN_MODES = ("503", "500", "timeout")


class FaultConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The settable faults; the JSON body of ``POST /sim/faults`` (partial updates)."""

    latency_ms: int = 0
    error_rate: float = 0.0
    order_unknown_rate: float = 0.0
    unknown_mode: str = "503"
    timeout_s: float = 15.0
    drop_kline_rate: float = 0.0
    frozen: list[str] = msgspec.field(default_factory=list)
    revoked_keys: list[str] = msgspec.field(default_factory=list)
    clock_offset_ms: int = 0

    def __post_init__(self) -> None:
        if abs(self.clock_offset_ms) > 86_400_000:
            raise ValueError(f"clock_offset_ms must be within +-1 day, got {self.clock_offset_ms}")
        for name in ("error_rate", "order_unknown_rate", "drop_kline_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.latency_ms < 0 or self.timeout_s < 0:
            raise ValueError("latency_ms and timeout_s must be >= 0")
        if self.unknown_mode not in UNKNOWN_MODES:
            raise ValueError(f"unknown_mode must be one of {UNKNOWN_MODES}")
        self.frozen = [s.upper() for s in self.frozen]


class FaultUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /sim/faults`` body: any subset of :class:`FaultConfig` plus actions."""

    latency_ms: int | None = None
    error_rate: float | None = None
    order_unknown_rate: float | None = None
    unknown_mode: str | None = None
    timeout_s: float | None = None
    drop_kline_rate: float | None = None
    frozen: list[str] | None = None
    revoked_keys: list[str] | None = None
    clock_offset_ms: int | None = None
    rate_limit_s: float | None = None  # action: 429 to every REST request for N wall s
    ban_s: float | None = None  # action: 418 (IP ban) to every REST request for N wall s
    disconnect_ws: bool = False
    half_open: bool = False  # action: every open WebSocket goes silent, not closed
    server_shutdown: bool = False
    shutdown_grace_s: float | None = None  # with server_shutdown: notice -> close

    def __post_init__(self) -> None:
        if self.shutdown_grace_s is not None and not 0 <= self.shutdown_grace_s <= 3600:
            raise ValueError(
                f"shutdown_grace_s must be within 0..3600, got {self.shutdown_grace_s}"
            )
        for name in ("rate_limit_s", "ban_s"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 86_400:
                raise ValueError(f"{name} must be within (0, 86400] wall seconds, got {value}")


class Faults:
    def __init__(self, config: FaultConfig | None = None, seed: int = 0) -> None:
        self.config = config or FaultConfig()
        self.initial = msgspec.structs.replace(self.config)
        self._rng = random.Random(seed ^ 0x5EED)

    def update(self, update: FaultUpdate) -> FaultConfig:
        """Apply the set fields (raises ``ValueError`` for a bad value)."""
        fields = {
            k: v
            for k, v in msgspec.structs.asdict(update).items()
            if v is not None and k in FaultConfig.__struct_fields__
        }
        merged = msgspec.structs.asdict(self.config) | fields
        self.config = FaultConfig(**merged)
        return self.config

    def clear(self) -> None:
        self.config = FaultConfig()

    def as_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self.config)

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def fail_request(self) -> bool:
        return self._roll(self.config.error_rate)

    def lose_order_answer(self) -> bool:
        return self._roll(self.config.order_unknown_rate)

    def drop_kline(self) -> bool:
        return self._roll(self.config.drop_kline_rate)

    def is_frozen(self, symbol: str) -> bool:
        frozen = self.config.frozen
        return bool(frozen) and ("*" in frozen or symbol in frozen)
