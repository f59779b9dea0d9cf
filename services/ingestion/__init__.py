"""``botfleet ingestion``: Binance market data into Redis, with no gap and no duplicate.

Read top to bottom: :mod:`.app` (load settings, connect, start loops, wait),
:mod:`.connection` (WebSockets), :mod:`.feed` and :mod:`.sync` (the pure core:
routing and candle sequencing), :mod:`.control` (stream placement and
SUBSCRIBE/UNSUBSCRIBE pacing), :mod:`.writer` (+ ``candle_append.lua``,
``tick_append.lua``), :mod:`.rest` (klines, exchangeInfo inside the fleet weight
budget), :mod:`.leases` (shards held by instances), :mod:`.service` (the loops).
"""
