"""``botfleet api``: the HTTP control API and the live dashboard (Litestar).

Reads fleet state from Redis, writes only what the API owns (``bot:{id}`` config and
desired state, ``bots``, ``stream:bot-commands``, ``risk:*``). Never talks to Binance
and never holds exchange keys.
"""
