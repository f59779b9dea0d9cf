"""Strategies, indicators, bot configuration, exits, sizing and position accounting.

Pure code (no I/O, no asyncio, no Redis) shared by the runner and, later, a backtester.
The runner's path: ``BotConfig`` -> ``config.build_strategy()`` -> one
``strategy.evaluator()`` per ``config.evaluation_key()`` (seed once, ``on_close`` per
candle) -> signals to every bot of that key; ``BotBook`` per bot for fills, exits and
statistics.
"""

from shared.strategies.accounting import ApplyResult, BotBook, RoundTrip
from shared.strategies.bars import Bar, Bars
from shared.strategies.base import (
    OutOfOrderCandle,
    Signal,
    SignalAction,
    StrategyEvaluator,
    StrategyParams,
    TradingStrategy,
    canonical_params,
)
from shared.strategies.config import (
    BotConfig,
    FixedQuoteSizing,
    Interval,
    PercentEquitySizing,
    RiskSizing,
    Sizing,
)
from shared.strategies.exits import (
    ExitCheck,
    ExitLevels,
    ExitPlan,
    ExitPosition,
    ExitReason,
    check_exit,
    exit_levels,
)
from shared.strategies.registry import (
    UnknownStrategyError,
    create_strategy,
    describe_strategies,
    get_strategy_class,
    plugin_errors,
    register,
    strategy_names,
)
from shared.strategies.sizing import EntrySize, size_entry, stop_distance

__all__ = [
    "ApplyResult",
    "Bar",
    "Bars",
    "BotBook",
    "BotConfig",
    "EntrySize",
    "ExitCheck",
    "ExitLevels",
    "ExitPlan",
    "ExitPosition",
    "ExitReason",
    "FixedQuoteSizing",
    "Interval",
    "OutOfOrderCandle",
    "PercentEquitySizing",
    "RiskSizing",
    "RoundTrip",
    "Signal",
    "SignalAction",
    "Sizing",
    "StrategyEvaluator",
    "StrategyParams",
    "TradingStrategy",
    "UnknownStrategyError",
    "canonical_params",
    "check_exit",
    "create_strategy",
    "describe_strategies",
    "exit_levels",
    "get_strategy_class",
    "plugin_errors",
    "register",
    "size_entry",
    "stop_distance",
    "strategy_names",
]
