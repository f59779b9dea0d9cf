"""Parity of ``botfleet backtest``'s engine with the live code path, on the same candles.

What it proves: over a few thousand generated candles, the round trips the backtest
engine produces (open and close times, quantities, cost, proceeds, fees, realized PnL,
to the last decimal) equal those of the runner's own decision core
(``services/runner/core.BotState``: ``on_signal`` on every closed candle, ``on_price``
on every tick, ``on_report`` for every fill) when its intents are turned into orders
by the gateway's own code (``services/gateway/sizing.prepare``) and filled by the paper
gateway's matching (``services/gateway/paper.match``) at the same prices: the next
candle's open for a decision on a close; for an exit, the tick that triggered it.

The ticks given to ``BotState`` are the candle's path (open, nearer extreme, farther
extreme, close) plus, on each segment, every level of the open position it passes
(stop, take-profit, trailing stop) in the order the price meets them: the prices a
continuous market would print first at or beyond each level. This is the fill model
docs/backtest.md states, reached here through the live code's tick handling.

What it does not prove: the runner's Redis shell, the gateway's process, the
simulator's matching, a fleet trading a replayed file (issue 17's full parity test is
not done); latency between a decision and its fill is taken as zero here and in the
backtest alike.
"""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.backtest.engine import Backtest
from services.backtest.rules import default_rules
from services.gateway.paper import PaperCosts, match
from services.gateway.sizing import prepare
from services.runner.core import BotState
from shared.bots import client_order_id
from shared.fills import Costs
from shared.klines import Kline, read_klines
from shared.messages import Candle, ExecutionReport, ExecutionStatus, OrderIntent
from shared.strategies.accounting import BotBook, RoundTrip
from shared.strategies.bars import Bar
from shared.strategies.config import BotConfig
from shared.strategies.exits import trailing_stop_price

FEE = Decimal("0.001")
SLIP = Decimal("0.0005")


def write_file(path: Path, n: int, step_ms: int, seed: int) -> None:
    rng = random.Random(seed)
    price, t = 60_000.0, 1_600_000_000_000 // step_ms * step_ms
    with path.open("w") as fh:
        for i in range(n):
            o = price
            c = max(1.0, o * math.exp(rng.gauss(0, 0.006) + 0.002 * math.sin(i / 40)))
            h = max(o, c) * (1 + abs(rng.gauss(0, 0.003)))
            lo = min(o, c) * (1 - abs(rng.gauss(0, 0.003)))
            fh.write(f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},1.5,{t + step_ms - 1},0,1,0,0,0\n")
            price, t = float(f"{c:.2f}"), t + step_ms


class Live:
    """``BotState`` driven as the runner and the paper gateway would drive it."""

    def __init__(self, config: BotConfig) -> None:
        self.rules = default_rules(config.symbol)
        step = self.rules.step_size
        book = BotBook(
            allocation=config.quote_allocation,
            base_asset=self.rules.base_asset,
            quote_asset=self.rules.quote_asset,
            symbol=config.symbol,
            dust_qty=step,
            exit_plan=config.exit_plan(),
        )
        self.state = BotState.create("parity", config, 1, book)
        self.state.status = "running"
        self.strategy = config.build_strategy()
        self.evaluator = self.strategy.evaluator()
        self.costs = PaperCosts(taker_fee=FEE, maker_fee=FEE, slippage=SLIP)
        self.trips: list[RoundTrip] = []
        self.count = 0

    def fill(self, intent: OrderIntent, price: Decimal, ts: int) -> None:
        order = prepare(intent, self.rules, price)
        fill = match(order, price, self.costs, self.rules.step_size)
        assert fill is not None
        report = ExecutionReport(
            intent_id=intent.intent_id,
            client_order_id=client_order_id(intent.intent_id),
            bot_id=intent.bot_id,
            symbol=intent.symbol,
            side=intent.side,
            status=ExecutionStatus.FILLED,
            final=True,
            executed_qty=fill.qty,
            cumulative_quote=fill.quote,
            avg_price=fill.price,
            commission=fill.commission,
            commission_asset=fill.commission_asset,
            is_exit=intent.is_exit,
            epoch=intent.epoch,
            ts=ts,
        )
        self.trips.extend(self.state.on_report(report, ts).trades)

    def ticks(self, k: Kline) -> list[Decimal]:
        """The path's prices and, between them, the levels of the position they pass."""
        o, h, lo, c = (Decimal(x) for x in k.text)
        path = [o, lo, h, c] if k.close >= k.open else [o, h, lo, c]
        out = [path[0]]
        book = self.state.book
        pct = self.state.config.trailing_stop_pct
        for a, b in itertools.pairwise(path):
            levels = [x for x in (book.stop_price, book.take_profit_price) if x is not None]
            if pct is not None and book.trailing_high is not None:
                # the trailing level as it stands when the price turns down from ``a``
                levels.append(trailing_stop_price(max(book.trailing_high, a), pct))
            between = sorted((x for x in levels if min(a, b) < x < max(a, b)), reverse=b < a)
            out.extend(between)
            out.append(b)
        return out

    def candle(self, k: Kline, pending: OrderIntent | None) -> OrderIntent | None:
        if pending is not None:
            self.fill(pending, Decimal(k.text[0]), k.open_time)
        if self.state.book.is_open:
            for price in self.ticks(k):
                change = self.state.on_price(price, k.open_time, k.open_time, "0-0")
                if change.intent is not None:
                    self.fill(change.intent, price, k.open_time)
                    break
        self.count += 1
        signal = self.evaluator.on_candle(
            Bar(k.open_time, k.close_time, k.open, k.high, k.low, k.close, k.volume)
        )
        if self.count < self.strategy.warmup_candles:
            return None
        # BotState notes the signal's ATR itself on an entry (ATR stops)
        candle = Candle(
            symbol=self.state.config.symbol,
            interval=self.state.config.interval,
            open_time=k.open_time,
            close_time=k.close_time,
            open=Decimal(k.text[0]),
            high=Decimal(k.text[1]),
            low=Decimal(k.text[2]),
            close=Decimal(k.text[3]),
            volume=Decimal(1),
        )
        change = self.state.on_signal(candle, signal, k.close_time, "0-0")
        return change.intent


def trip_key(t: RoundTrip) -> tuple[Any, ...]:
    return (t.opened_at, t.closed_at, t.qty, t.cost, t.proceeds, t.fees, t.pnl, t.dust)


CONFIGS: dict[str, dict[str, Any]] = {
    "signals only, percent of equity, cooldown": {
        "strategy": "ema_cross",
        "params": {"fast_period": 5, "slow_period": 13},
        "sizing": {"mode": "percent_equity", "percent": "50"},
        "cooldown_candles": 3,
    },
    "stop, take-profit, trailing": {
        "strategy": "rsi",
        "params": {"period": 7, "oversold": 35, "overbought": 65},
        "stop_loss_pct": "1.5",
        "take_profit_pct": "2.5",
        "trailing_stop_pct": "1",
    },
    "ATR exits, fixed quote": {
        "strategy": "macd_cross",
        "params": {},
        "sizing": {"mode": "fixed_quote", "quote_amount": "300"},
        "stop_loss_atr": "1.5",
        "take_profit_atr": "3",
    },
    "risk sizing": {
        "strategy": "bollinger",
        "params": {},
        "stop_loss_pct": "2",
        "sizing": {"mode": "risk", "risk_pct": "1"},
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_backtest_round_trips_equal_the_live_cores(tmp_path: Path, name: str) -> None:
    config = BotConfig.model_validate(
        {
            "name": name,
            "symbol": "BTCUSDT",
            "interval": "1h",
            "quote_allocation": "1000",
            **CONFIGS[name],
        }
    )
    path = tmp_path / "BTCUSDT-1h.csv"
    write_file(path, 3000, 3_600_000, seed=len(name))
    engine = Backtest(config, default_rules("BTCUSDT"), Costs(taker_fee=FEE, slippage=SLIP))
    engine.run(read_klines(path, "1h"))

    live = Live(config)
    pending: OrderIntent | None = None
    for k in read_klines(path, "1h"):
        pending = live.candle(k, pending)

    assert len(engine.trips) >= 10, "too few round trips to compare anything"
    assert [trip_key(t) for t in engine.trips] == [trip_key(t) for t in live.trips]
    assert engine.book.realized_pnl == live.state.book.realized_pnl
    assert engine.book.qty == live.state.book.qty
    assert engine.refusals == []
    if config.exit_plan().stop_loss_pct or config.stop_loss_atr:
        reasons = {t.exit_reason.split(" ")[0] for t in engine.trips}
        assert reasons & {"STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP"}, reasons
