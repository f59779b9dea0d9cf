"""The runner's pure decision core: entries, the stale gate, exits and close-on-stop."""

from __future__ import annotations

from decimal import Decimal

from services.runner.core import BotState, stale_reason
from shared.messages import Candle, Side
from shared.strategies.accounting import BotBook
from shared.strategies.base import Signal, SignalAction
from shared.strategies.config import BotConfig
from tests.support.messages import candle as flat_candle
from tests.support.messages import report

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
    return flat_candle("BTCUSDT", 60_000, open_time, close)


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


def exited_at(config: BotConfig, ts: int) -> BotState:
    """A bot that bought at 100 and sold everything at 110, the sale reported at ``ts``."""
    book = BotBook(Decimal(1000), "BTC", "USDT", symbol="BTCUSDT", exit_plan=config.exit_plan())
    state = BotState.create("b1", config, 3, book, status="running")
    bought = report(Side.BUY, ("100", "1", "0", "USDT"), intent_id="b1:0:buy", ts=ts - 60_000)
    sold = report(Side.SELL, ("110", "1", "0", "USDT"), intent_id="b1:t1:sell", ts=ts)
    for filled in (bought, sold):
        assert state.on_report(filled, now=1).book
    assert not state.book.is_open and state.last_exit_at == ts
    return state


def test_cooldown_seconds_runs_on_the_exchange_clock_from_the_exit_report() -> None:
    config = CFG.model_copy(update={"cooldown_seconds": 120})
    exit_ts = 10_000_000
    state = exited_at(config, exit_ts)
    # The candle closing 60 s after the exit is still cooling down, whatever this host's
    # clock says (here: an hour later), and says how long is left.
    early = state.on_signal(candle(exit_ts + 1), BUY, exit_ts + 3_600_000, "0-0")
    assert early.intent is None and "cooldown: 60s left of 120s" in early.log[0]["reason"]
    # The candle closing 120 s after it may enter, even if this host's clock lags.
    late = state.on_signal(candle(exit_ts + 60_001), BUY, 0, "0-0")
    assert late.intent is not None and late.intent.side is Side.BUY


def test_cooldown_candles_counts_candles_closed_since_the_exit() -> None:
    config = CFG.model_copy(update={"cooldown_candles": 2})
    exit_ts = 10_000_000
    state = exited_at(config, exit_ts)
    one = state.on_signal(candle(exit_ts + 1), BUY, 0, "0-0")  # closes 60 s after
    assert one.intent is None and "1 of 2 candles" in one.log[0]["reason"]
    two = state.on_signal(candle(exit_ts + 60_001), BUY, 0, "0-0")  # 120 s after
    assert two.intent is not None
