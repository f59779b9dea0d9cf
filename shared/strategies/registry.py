"""Strategies by name. The API lists them and serves their parameter schemas; the runner
builds one from a bot's config with :func:`create_strategy`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.strategies.base import TradingStrategy
from shared.strategies.bollinger import BollingerStrategy
from shared.strategies.ema_cross import EMACrossStrategy
from shared.strategies.rsi import RSIStrategy

StrategyClass = type[TradingStrategy[Any]]

_REGISTRY: dict[str, StrategyClass] = {}


class UnknownStrategyError(ValueError):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(_REGISTRY))
        super().__init__(f"unknown strategy {name!r} (known: {known})")
        self.name = name


def register(cls: StrategyClass) -> StrategyClass:
    """Add a strategy class under its ``name`` (usable as a decorator)."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already taken by {existing.__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)


def get_strategy_class(name: str) -> StrategyClass:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownStrategyError(name) from None


def create_strategy(name: str, params: Mapping[str, Any] | None = None) -> TradingStrategy[Any]:
    """Strategy ``name`` with validated ``params`` (pydantic ``ValidationError`` if invalid)."""
    return get_strategy_class(name)(params)


def describe_strategies() -> list[dict[str, Any]]:
    """Name, title and parameter JSON schema of every strategy (for the API)."""
    return [
        {"name": name, "title": cls.title, "params_schema": cls.params_schema()}
        for name, cls in sorted(_REGISTRY.items())
    ]


for _cls in (RSIStrategy, EMACrossStrategy, BollingerStrategy):
    register(_cls)
