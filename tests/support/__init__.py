"""Test support: the private redis-server and real processes (no mocks)."""
