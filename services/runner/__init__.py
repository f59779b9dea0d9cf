"""``botfleet runner``: holds bots by lease, evaluates their strategies on closed candles,
manages exits on ticks, emits order intents and keeps each bot's books from execution
reports (../../docs/runner.md)."""
