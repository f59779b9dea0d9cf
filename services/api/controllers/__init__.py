"""One controller per resource; handlers parse, call :mod:`services.api.fleet` or the
repository, and answer. No business rule lives here."""
