"""``botfleet backtest``: one bot config over historical klines with the runner's shared code."""
