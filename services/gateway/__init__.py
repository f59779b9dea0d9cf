"""The execution gateway (`botfleet gateway`): the only holder of API keys and the signed
REST client. It turns order intents into orders exactly once, guards the portfolio and
reports back on ``stream:executions`` (see docs/gateway.md).

Layout: pure cores (``rails``, ``sizing``, ``paper``, ``orders``, ``breaker``,
``risk_state``) with no I/O; the Redis shell (``store`` + ``lua/``, whose constants and
argument layouts ``scripts`` generates), the exchange shells (``exchange`` for signed REST,
``user_stream`` for the WebSocket API user data), and the loops (``processor``,
``consumer``, ``paper_executor``/``paper_follower``, ``live``, ``follower``) wired
together in ``app``.
"""
