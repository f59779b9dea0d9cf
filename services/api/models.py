"""What the API answers with: msgspec Structs, one per resource view.

Request bodies are the shared pydantic models (``BotConfig``, ``RiskLimits``) so the
OpenAPI schema documents exactly what the runners and the gateway will read.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class Bot(msgspec.Struct, kw_only=True):
    id: str
    name: str
    symbol: str
    interval: str
    strategy: str
    config: dict[str, Any]
    desired: str
    status: str
    status_reason: str = ""
    stale: list[str] = msgspec.field(default_factory=list)
    owner: str = ""
    epoch: int = 0
    error: str = ""
    created_at: int = 0
    updated_at: int = 0
    position: dict[str, str] = msgspec.field(default_factory=dict)
    stats: dict[str, str] = msgspec.field(default_factory=dict)


class BotPage(msgspec.Struct, kw_only=True):
    items: list[Bot]
    total: int
    offset: int
    limit: int


class CommandAccepted(msgspec.Struct, kw_only=True):
    """A lifecycle command was recorded; ``settled`` tells whether ``?wait=`` saw the
    bot reach the state the command leads to."""

    command_id: str
    bot_id: str
    action: str
    desired: str
    status: str
    settled: bool


class Entry(msgspec.Struct, kw_only=True):
    """One stream entry (trade, decision) as the runner wrote it."""

    id: str
    fields: dict[str, Any]


class Summary(msgspec.Struct, kw_only=True):
    bots: int
    by_status: dict[str, int]
    open_positions: int
    exposure: str
    equity: str
    realized_pnl: str
    unrealized_pnl: str
    total_pnl: str
    fees: str
    trades: int
    halted: bool
    halt_reason: str | None = None


class ServiceInstance(msgspec.Struct, kw_only=True):
    service: str
    instance: str
    alive: bool
    age_ms: int
    started_at: int
    figures: dict[str, str]
    # The main loop's last pass (heartbeat ``loop_at``); None when the service has none.
    loop_age_ms: int | None = None
    loop_stalled: bool = False
    healthy: bool = True  # alive, loop progressing and ``ok`` not 0 (shared/health.py)
    reason: str = ""  # what is wrong when not healthy


class StaleBot(msgspec.Struct, kw_only=True):
    id: str
    symbols: list[str]
    reason: str


class ExchangeProbe(msgspec.Struct, kw_only=True):
    """``GET {exchange}/api/v3/ping`` from the API (the simulator, when the fleet runs on it)."""

    url: str
    ok: bool
    ping_ms: float | None = None
    error: str = ""


class Health(msgspec.Struct, kw_only=True):
    status: str  # ok | degraded | down
    redis: dict[str, Any]
    services: dict[str, list[ServiceInstance]]
    missing: list[str]
    # Symbols the runners hold stale (their bots' ``stale``), with the age of the last
    # price on the exchange's clock (-1: none known).
    stale_symbols: dict[str, int]
    stale_bots: list[StaleBot]
    halted: bool
    halt_reason: str | None = None
    exchange: ExchangeProbe | None = None


class StrategyInfo(msgspec.Struct, kw_only=True):
    name: str
    title: str
    params_schema: dict[str, Any]
    # closed candles of warm-up with the default parameters (docs/strategies.md)
    warmup_candles: int = 0
    source: str = "builtin"  # or the plugin (distribution and entry point) it came from


class SymbolInfo(msgspec.Struct, kw_only=True):
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    rules: dict[str, Any]


class Price(msgspec.Struct, kw_only=True):
    symbol: str
    price: str


class CandleView(msgspec.Struct, kw_only=True):
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str


class Execution(msgspec.Struct, kw_only=True):
    id: str
    report: dict[str, Any]


class Balances(msgspec.Struct, kw_only=True):
    mode: str
    assets: dict[str, Any]


class RiskState(msgspec.Struct, kw_only=True):
    limits: dict[str, str]
    halted: bool
    halt_reason: str | None = None


class HaltRequest(msgspec.Struct, kw_only=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] = "halted by an operator"
