"""What every botfleet process shares: settings, logging, Redis keys and helpers,
message structs, the pure Binance protocol, strategies and indicators."""
