"""Strategies by name. The API lists them and serves their parameter schemas; the runner
builds one from a bot's config with :func:`create_strategy`.

Besides the built-in ones, every installed package may add strategies through the
``botfleet.strategies`` entry-point group (docs/strategies.md, "Your own strategy"):

    [project.entry-points."botfleet.strategies"]
    my_strategy = "my_package.module:MyStrategy"

Each entry point names a :class:`TradingStrategy` subclass; its ``name`` is the
strategy's name (the entry point's own name is only a label). A plugin that cannot be
loaded, is not a strategy, or takes a name already taken is left out and reported by
:func:`plugin_errors` (the API shows them) instead of stopping every service.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from shared.strategies.base import TradingStrategy
from shared.strategies.bollinger import BollingerStrategy
from shared.strategies.ema_cross import EMACrossStrategy
from shared.strategies.ema_stochrsi import EMAStochRSIStrategy
from shared.strategies.ema_trend import EMATrendStrategy
from shared.strategies.macd_cross import MACDCrossStrategy
from shared.strategies.rsi import RSIStrategy

StrategyClass = type[TradingStrategy[Any]]

ENTRY_POINT_GROUP = "botfleet.strategies"

_REGISTRY: dict[str, StrategyClass] = {}
_PLUGINS: dict[str, str] = {}  # strategy name -> "distribution entry point" it came from
_PLUGIN_ERRORS: list[str] = []


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
        {
            "name": name,
            "title": cls.title,
            "params_schema": cls.params_schema(),
        }
        for name, cls in sorted(_REGISTRY.items())
    ]


def strategy_source(name: str) -> str:
    """``builtin`` or the plugin (distribution and entry point) strategy ``name`` came from."""
    return _PLUGINS.get(name, "builtin")


def plugin_errors() -> list[str]:
    """Why each ``botfleet.strategies`` entry point that was left out was left out."""
    return list(_PLUGIN_ERRORS)


def load_plugins() -> None:
    """Register the strategies of every installed ``botfleet.strategies`` entry point."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"{ep.dist.name if ep.dist else '?'} {ep.name}"
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - any error of foreign code: reported, left out
            _PLUGIN_ERRORS.append(f"{origin}: cannot load {ep.value}: {exc!r}")
            continue
        if not (isinstance(cls, type) and issubclass(cls, TradingStrategy)):
            _PLUGIN_ERRORS.append(f"{origin}: {ep.value} is not a TradingStrategy subclass")
            continue
        if _REGISTRY.get(cls.name, cls) is not cls:
            _PLUGIN_ERRORS.append(f"{origin}: strategy name {cls.name!r} is already taken")
            continue
        register(cls)
        _PLUGINS[cls.name] = origin


for _cls in (
    RSIStrategy,
    EMACrossStrategy,
    BollingerStrategy,
    MACDCrossStrategy,
    EMAStochRSIStrategy,
    EMATrendStrategy,
):
    register(_cls)
load_plugins()
