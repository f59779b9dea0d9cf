"""``make run``'s promise, end to end: ``botfleet dev`` brings up Redis, the simulator
and every service, its demo bots trade through the real signed path within a minute or
so, Ctrl-C stops everything and exits 0, and a second start finds the same bots and
trades (the private Redis keeps them in its AOF)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.fleet import DevFleet

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_bots_trade_survive_ctrl_c_and_a_restart(tmp_path: Path) -> None:
    fleet = DevFleet(tmp_path, sim_speed=120)
    try:
        fleet.start()
        bots = fleet.wait_for_bots(3)
        assert {b["strategy"] for b in bots} == {"rsi", "ema_cross", "bollinger"}
        assert len({b["symbol"] for b in bots}) == 3
        trades = fleet.wait_for_trades(min_trades=1, timeout=120)
        trade_ids = {bot: {t["id"] for t in ts} for bot, ts in trades.items()}

        assert fleet.interrupt() == 0, fleet.log_text()[-6000:]
        log = fleet.log_text()
        assert "all processes stopped" in log
        for port in (fleet.api_port, fleet.sim_port, fleet.redis_port):
            assert not _port_open(port), f"port {port} still served after Ctrl-C"

        fleet.process.start()
        fleet.process.wait_http(f"{fleet.api_url}/healthz", timeout=60)
        again = fleet.bots()
        assert sorted(b["id"] for b in again) == sorted(b["id"] for b in bots), "bots changed"
        for bot_id, ids in trade_ids.items():
            kept = {t["id"] for t in fleet.trades(bot_id)}
            assert ids <= kept, f"trades of {bot_id} lost across the restart"
        # The bots the Ctrl-C stopped are started again.
        fleet.wait_for_bots(3, timeout=60)
        assert fleet.interrupt() == 0, fleet.log_text()[-6000:]
    except BaseException:
        print(f"\n===== botfleet dev log =====\n{fleet.log_text()[-12000:]}")
        raise
    finally:
        fleet.kill()
