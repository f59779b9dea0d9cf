"""``botfleet ledger check`` against the exchange simulator: a live gateway trades on the
simulator, the ledger records the reports, and the check (the exchange's side read by
``botfleet statement``, the gateway's signed client) finds them equal; a fill taken out
of the ledger, a price changed and a fill the exchange never made are each printed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from sqlalchemy import delete, func, select, update

from services.ledger.check import Fill, reconcile
from shared.ledger import schema
from shared.ledger.engine import create_engine
from shared.messages import OrderIntent, Side
from tests.integration.gateway.live_support import (
    gateway_env,
    seed_from_sim,
    send,
    start_gateway,
    wait_final,
)
from tests.support.processes import BotfleetProcess, base_env
from tests.support.sim import SimClient, start_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimClient]:
    # speed 1: the simulator's clock is the wall's, as the exchange's is
    client = start_sim(tmp_path_factory.mktemp("sim-ledger"), speed=1.0)
    yield client
    client.stop()


def intent(n: int, symbol: str, side: Side = Side.BUY) -> OrderIntent:
    return OrderIntent(
        intent_id=f"check-bot:{n}-{time.time_ns()}:{side.value.lower()}",
        bot_id="check-bot",
        epoch=1,
        symbol=symbol,
        side=side,
        quantity=Decimal("0.01") if symbol == "ETHUSDT" else Decimal("0.001"),
    )


def run_check(url: str, redis_url: str, sim: SimClient, start: int, end: int) -> Any:
    # The gateway's settings: `botfleet statement` (the gateway's package) signs with them.
    env = base_env({**sim.env(), "BOTFLEET_REDIS_URL": redis_url})
    return subprocess.run(
        [sys.executable, "-m", "services", "ledger", "--database-url", url, "check",
         "--start", str(start), "--end", str(end)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def _fills(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(schema.fills))).scalar_one()
            )
    finally:
        await engine.dispose()


async def _tamper(url: str) -> tuple[int, int]:
    """Delete one fill, change another's price, add one the exchange never made."""
    engine = create_engine(url)
    f = schema.fills
    try:
        async with engine.begin() as conn:
            rows = (await conn.execute(select(f.c.id, f.c.trade_id).order_by(f.c.id))).all()
            await conn.execute(delete(f).where(f.c.id == rows[0].id))
            await conn.execute(update(f).where(f.c.id == rows[1].id).values(price=Decimal("1.5")))
            await conn.execute(
                f.insert().values(
                    fill_key="live:BTCUSDT:999999999", intent_id="x:1:buy",
                    client_order_id="bf-x", bot_id="check-bot", symbol="BTCUSDT", side="BUY",
                    mode="live", trade_id=999_999_999, exchange_order_id=999_999_999,
                    price=Decimal(1), qty=Decimal(1), quote_qty=Decimal(1),
                    commission=Decimal(0), commission_asset="BTC", is_exit=False,
                    ts=int(time.time() * 1000) - 1000,
                )
            )  # fmt: skip
            return rows[0].trade_id, rows[1].trade_id
    finally:
        await engine.dispose()


def test_ledger_check_against_the_simulator(
    tmp_path: Path, sim: SimClient, clean_redis_url: str, processes: list[BotfleetProcess]
) -> None:
    r = sync_redis.Redis.from_url(clean_redis_url)
    seed_from_sim(r, sim)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    start = int(time.time() * 1000) - 60_000
    gw = start_gateway(tmp_path, gateway_env(sim, clean_redis_url))
    processes.append(gw)
    ledger = BotfleetProcess(
        ["ledger", "--database-url", url, "--instance", "ledger-check"],
        tmp_path / "ledger.log",
        {"BOTFLEET_REDIS_URL": clean_redis_url},
    ).start()
    processes.append(ledger)
    intents = [intent(n, ("BTCUSDT", "ETHUSDT")[n % 2]) for n in range(6)]
    intents += [intent(10, "BTCUSDT", Side.SELL)]
    send(r, *intents)
    finals = wait_final(r, intents, gw, timeout=30)
    traded = sum(len(f[0].fills) for f in finals.values())
    assert traded >= len(intents)
    ledger.wait_for(lambda: asyncio.run(_fills(url)) == traded, 30, "every fill in the ledger")
    end = int(time.time() * 1000) + 60_000

    clean = run_check(url, clean_redis_url, sim, start, end)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"checked {traded} ledger fills against {traded} exchange trades" in clean.stdout
    assert "0 differences" in clean.stdout

    deleted, changed = asyncio.run(_tamper(url))
    dirty = run_check(url, clean_redis_url, sim, start, end)
    assert dirty.returncode == 1, dirty.stdout + dirty.stderr
    lines = dirty.stdout.splitlines()
    assert any(line.startswith("missing_in_ledger") and f" {deleted} " in line for line in lines)
    assert any(
        line.startswith("mismatch") and f" {changed} " in line and "price: ledger 1.5" in line
        for line in lines
    )
    assert any(line.startswith("missing_on_exchange") and "999999999" in line for line in lines)
    assert "3 differences" in dirty.stdout
    r.close()


def test_a_fill_dated_outside_the_period_on_one_side_is_no_difference() -> None:
    """Clocks differ at the edges: the ledger dates by report, the exchange by match."""

    def fill(trade_id: int, time_ms: int, price: str = "10") -> Fill:
        return Fill(
            "BTCUSDT", trade_id, 7, "BUY", Decimal(price), Decimal(1), Decimal(0), "BNB", time_ms
        )

    ledger = {("BTCUSDT", 1): fill(1, 100)}
    exchange = {("BTCUSDT", 2): fill(2, 100)}
    elsewhere_in_ledger = {("BTCUSDT", 2): fill(2, 99)}
    elsewhere_on_exchange = {("BTCUSDT", 1): fill(1, 101, "10.0")}
    assert reconcile(ledger, exchange, elsewhere_in_ledger, elsewhere_on_exchange) == []
