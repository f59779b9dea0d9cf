"""The exchange simulator: an offline Binance Spot look-alike (REST + WebSocket).

Pure cores, tested without sockets:

- :mod:`.clock`     the exchange clock (``--speed``), all timestamps come from it
- :mod:`.market`    the seeded per-second price path of every symbol (or a replay)
- :mod:`.candles`   klines of every interval aggregated from that one path
- :mod:`.book`      accounts, orders and matching against the path (Decimal)
- :mod:`.requests`  request parsing and Binance's validation rules and error codes
- :mod:`.limits`    request-weight and order-count windows, 429 / 418
- :mod:`.faults`    the fault injector's state
- :mod:`.feed`      kline / miniTicker events per exchange second, pre-serialised

Thin shells: :mod:`.server` (aiohttp: REST, market streams, WS API, ``/sim/*``) and
:mod:`.cli` (``botfleet exchange-sim``).
"""
