"""The ``botfleet`` CLI client of the control API: ``bots``, ``health``, ``risk``."""
