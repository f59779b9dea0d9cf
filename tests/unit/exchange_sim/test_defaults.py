"""The simulator listens where the services look for it by default (one URL table)."""

from __future__ import annotations

from urllib.parse import urlsplit

from services.exchange_sim.app import SimOptions
from shared.binance.endpoints import urls_for
from shared.settings import BinanceEnv, Settings


def test_the_default_sim_address_is_where_sim_settings_point() -> None:
    opts = SimOptions()
    settings = Settings(binance_env=BinanceEnv.SIM)
    for url in (settings.rest_url, settings.ws_url, urls_for("sim").ws_api):
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == (opts.host, opts.port) == ("127.0.0.1", 9100)
