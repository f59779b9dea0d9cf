"""The three demo bots ``botfleet dev`` creates: one per strategy, each on its own
symbol, with short look-backs and tight exits so they trade within a minute at the
simulator's accelerated clock (1m candles closing every second at ``--speed 60``).

Pure: the payloads are plain ``POST /api/v1/bots`` bodies (a ``BotConfig`` each); the
supervisor sends them through the API like a user would, and only the ones whose
name does not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEMO_PREFIX = "demo-"

DEMO_BOTS: tuple[dict[str, Any], ...] = (
    {
        "name": "demo-rsi-btc",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "strategy": "rsi",
        "params": {"period": 5, "oversold": 40, "overbought": 60},
        "quote_allocation": "1000",
        "sizing": {"mode": "percent_equity", "percent": "50"},
        "stop_loss_pct": "0.6",
        "take_profit_pct": "0.4",
    },
    {
        "name": "demo-ema-eth",
        "symbol": "ETHUSDT",
        "interval": "1m",
        "strategy": "ema_cross",
        "params": {"fast_period": 3, "slow_period": 8},
        "quote_allocation": "1000",
        "sizing": {"mode": "percent_equity", "percent": "50"},
        "stop_loss_pct": "0.6",
        "take_profit_pct": "0.4",
    },
    {
        "name": "demo-bollinger-bnb",
        "symbol": "BNBUSDT",
        "interval": "1m",
        "strategy": "bollinger",
        "params": {"period": 10, "num_std": 1.0, "exit_at": "middle"},
        "quote_allocation": "1000",
        "sizing": {"mode": "percent_equity", "percent": "50"},
        "stop_loss_pct": "0.6",
        "take_profit_pct": "0.4",
    },
)


def demo_symbols() -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(b["symbol"]) for b in DEMO_BOTS))


def missing_demo_bots(existing_names: Iterable[str]) -> list[dict[str, Any]]:
    """The demo bots not created yet (matched by name, so a restart creates none and a
    bot the user deleted stays deleted only if they also pass ``--no-demo``)."""
    existing = set(existing_names)
    return [dict(bot) for bot in DEMO_BOTS if bot["name"] not in existing]
