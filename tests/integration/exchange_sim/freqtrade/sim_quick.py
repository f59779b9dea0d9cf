"""A freqtrade strategy that trades as soon as it can (the simulator test's driver):
enter on every candle, leave each trade after ``HOLD_S`` seconds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from freqtrade.persistence import Trade
from freqtrade.strategy import IStrategy
from pandas import DataFrame

HOLD_S = 8


class SimQuick(IStrategy):  # type: ignore[misc]
    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {"0": 100.0}  # never by ROI: custom_exit decides
    stoploss = -0.99
    process_only_new_candles = False
    startup_candle_count = 1

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["exit_long"] = 0
        return dataframe

    def custom_exit(
        self,
        pair: str,
        trade: Trade,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        **kwargs: Any,
    ) -> str | None:
        if current_time - trade.open_date_utc > timedelta(seconds=HOLD_S):
            return "sim_hold_over"
        return None
