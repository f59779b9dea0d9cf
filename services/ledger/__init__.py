"""``botfleet ledger``: the durable history of orders, fills, round trips, bot
configurations and daily equity, in SQL (PostgreSQL in deployments, SQLite locally).
See docs/ledger.md."""
