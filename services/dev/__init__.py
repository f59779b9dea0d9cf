"""``botfleet dev``: the whole fleet on one machine, in one terminal.

A private redis-server with AOF, the exchange simulator on an accelerated clock,
ingestion, runners, the gateway trading live against the simulator and the API, each
a child process with prefixed, coloured log lines; demo bots created through the API;
Ctrl-C stops everything in order.

``plan`` (what to start, in which order, with which command line and environment),
``restart`` (the restart policy), ``logs`` (line prefixes) and ``demo`` (the demo bots)
are pure; ``supervisor`` is the asyncio shell that runs the plan.
"""
