"""The runner's pure decision core: entries, the stale gate, exits and close-on-stop."""

from __future__ import annotations

from decimal import Decimal

from services.runner.core import BotState, stale_reason
from shared.messages import Candle, Side
from shared.strategies.accounting import BotBook
from shared.strategies.base import Signal, SignalAction
from shared.strategies.config import BotConfig

CFG = BotConfig.model_validate(
    {
        "name": "t",
        "symbol": "BTCUSDT",
        "interval": "1m",
        "strategy": "rsi",
        "quote_allocation": "1000",
        "sizing": {"mode": "fixed_quote", "quote_amount": "100"},
        "stop_loss_pct": "5",
    }
)
BUY = Signal(action=SignalAction.BUY, reason="crossed")


def bot() -> BotState:
    book = BotBook(Decimal(1000), "BTC", "USDT", symbol="BTCUSDT", exit_plan=CFG.exit_plan())
    return BotState.create("b1", CFG, 3, book, status="running")


def candle(open_time: int, close: str = "100") -> Candle:
    c = Decimal(close)
    return Candle(
        symbol="BTCUSDT",
        interval="1m",
        open_time=open_time,
        close_time=open_time + 59_999,
        open=c,
        high=c,
        low=c,
        close=c,
        volume=Decimal(1),
    )


def test_buy_signal_emits_one_entry_with_a_decision_derived_id_and_blocks_a_second() -> None:
    state = bot()
    change = state.on_signal(candle(60_000), BUY, 100_000, "0-0")
    assert change.intent is not None and change.intent.side is Side.BUY
    assert change.intent.intent_id == "b1:60000:buy" and change.intent.epoch == 3
    assert change.intent.quote_quantity == 100
    again = state.on_signal(candle(120_000), BUY, 160_000, "0-0")
    assert again.intent is None and "pending" in again.log[0]["reason"]


def test_stale_data_skips_entries_with_the_reason_logged() -> None:
    state = bot()
    state.set_stale("BTCUSDT", 0)
    change = state.on_signal(candle(60_000), BUY, 100_000, "0-0")
    assert change.intent is None and "stale" in change.log[0]["reason"]
    assert stale_reason("BTCUSDT", 60_000, 0, None, 60_000 + 15_001, 0) == "BTCUSDT"
    assert stale_reason("BTCUSDT", 60_000, 50_000, 50_000, 100_000, 15_000) == ""


def test_stop_with_a_flat_book_releases_and_with_a_position_closes_it_first() -> None:
    state = bot()
    done = state.on_stop(0, "0-0")
    assert done.release and state.status == "stopped"
    state = bot()
    state.book.qty, state.book.cost_basis, state.book.opened_at = Decimal(1), Decimal(100), 7
    closing = state.on_stop(0, "0-0")
    assert not closing.release and state.status == "stopping"
    assert closing.intent is not None and closing.intent.is_exit and closing.intent.quantity == 1
    assert closing.intent.intent_id == "b1:stop7:sell"
