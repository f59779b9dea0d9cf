"""A user's strategy package trades in a full fleet (issue 16): the example plugin
``examples/botfleet-donchian`` (installed in the test venv by ``make install``, found
through the ``botfleet.strategies`` entry points) runs in a runner process fed by the
real market path (the simulator at 240x, ingestion), and its entries go through a paper
gateway: a bot of that strategy, written as the API writes it, gets candles, breaks out,
sends an intent and gets a FILLED report, and holds the position in its books."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import keys
from shared.messages import ExecutionReport, ExecutionStatus, OrderIntent, Side, decode
from shared.strategies.registry import strategy_source
from tests.e2e.market_fleet import MarketFleet, bot_config
from tests.support.processes import BotfleetProcess
from tests.support.sim import SimClient, start_sim


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimClient]:
    client = start_sim(tmp_path / "sim", speed=240.0, symbols=("BTCUSDT",))
    yield client
    client.stop()


def test_a_plugin_strategy_bot_trades_through_ingestion_runner_and_gateway(
    sim: SimClient, clean_redis_url: str, tmp_path: Path, processes: list[BotfleetProcess]
) -> None:
    assert strategy_source("donchian_breakout") == "botfleet-donchian donchian_breakout"
    fleet = MarketFleet(sim, clean_redis_url, tmp_path, processes)
    try:
        fleet.start_ingestion()
        fleet.start_gateway()
        fleet.start_runner("r1")
        fleet.create_bot(
            "donchian-1",
            bot_config("donchian_breakout", {"entry_period": 5, "exit_period": 3}),
        )
        fleet.wait(
            lambda: fleet.bot("donchian-1").get("status") == "running", 60, "the bot running"
        )

        def intents() -> list[OrderIntent]:
            found = [decode(f) for _, f in fleet.r.xrange(keys.ORDER_INTENTS)]
            return [m for m in found if isinstance(m, OrderIntent) and m.bot_id == "donchian-1"]

        def filled() -> list[ExecutionReport]:
            found = [decode(f) for _, f in fleet.r.xrange(keys.EXECUTIONS)]
            return [
                m
                for m in found
                if isinstance(m, ExecutionReport)
                and m.bot_id == "donchian-1"
                and m.final
                and m.status is ExecutionStatus.FILLED
            ]

        buy = fleet.wait(intents, 120, "an entry intent of the plugin's bot")[0]
        assert buy.side is Side.BUY and buy.symbol == "BTCUSDT"
        assert "> high" in buy.reason  # the plugin's own words: a close above the channel
        report = fleet.wait(filled, 30, "its FILLED report")[0]
        assert report.intent_id == buy.intent_id and report.executed_qty > 0
        position = fleet.wait(
            lambda: fleet.r.hgetall(keys.bot_position("donchian-1")), 10, "the position"
        )
        assert position
        entries = [e for _, e in fleet.r.xrange(keys.bot_log("donchian-1")) if e["kind"] == "fill"]
        assert entries and buy.intent_id in entries[0].get("intent_id", "")
    except BaseException:
        print(fleet.logs())
        raise
