"""The pure core's side of issue 15: only the report that ends an intent ends it (fenced
copies are skipped), the bounded wait puts a bot in ``needs_attention`` with exits still
working, a late report brings it back, a stop always completes, and missed candles are
decided in order on adoption."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.runner.core import BotState, ends, fenced
from shared.messages import Candle, ExecutionReport, ExecutionStatus, Side
from shared.strategies.accounting import BotBook
from shared.strategies.base import Signal, SignalAction
from shared.strategies.config import BotConfig
from tests.support.messages import candle as flat_candle

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
HOLD = Signal(action=SignalAction.HOLD, reason="nothing")
BOUND = 120_000


def bot(epoch: int = 3, config: BotConfig = CFG) -> BotState:
    book = BotBook(Decimal(1000), "BTC", "USDT", symbol="BTCUSDT", exit_plan=config.exit_plan())
    return BotState.create("b1", config, epoch, book, status="running")


def candle(open_time: int, close: str = "100") -> Candle:
    return flat_candle("BTCUSDT", 60_000, open_time, close)


def outcome(
    intent_id: str,
    *,
    status: ExecutionStatus = ExecutionStatus.FILLED,
    epoch: int = 3,
    final: bool = True,
    qty: str = "1",
    price: str = "100",
    side: Side = Side.BUY,
) -> ExecutionReport:
    q = Decimal(qty) if status is not ExecutionStatus.REJECTED else Decimal(0)
    return ExecutionReport(
        intent_id=intent_id,
        client_order_id="bf-x",
        bot_id="b1",
        symbol="BTCUSDT",
        side=side,
        status=status,
        final=final,
        executed_qty=q,
        cumulative_quote=q * Decimal(price),
        avg_price=Decimal(price) if q else Decimal(0),
        epoch=epoch,
        reason="stale epoch 2 < bot epoch 3" if status is ExecutionStatus.REJECTED else "",
    )


def entered(state: BotState) -> str:
    change = state.on_signal(candle(60_000), BUY, 100_000, "0-0")
    assert change.intent is not None
    return change.intent.intent_id


def in_position(state: BotState) -> None:
    """The bot bought 1 at 100 (stop-loss at 95)."""
    bought = entered(state)
    assert state.on_report(outcome(bought), 110_000).book
    assert state.book.is_open and state.pending is None


def test_a_fenced_notice_and_an_old_style_fenced_rejection_leave_the_intent_pending() -> None:
    state = bot()
    pending = entered(state)
    notice = outcome(pending, status=ExecutionStatus.REJECTED, epoch=2, final=False)
    old_style = outcome(pending, status=ExecutionStatus.REJECTED, epoch=2, final=True)
    for copy in (notice, old_style):
        assert fenced(copy, 3)
        change = state.on_report(copy, 101_000)
        assert state.pending is not None and change.pending is state.pending
        assert not change.book and "ignored fenced" in change.log[0]["reason"]
        # ours is sent again at once (a gateway may have taken it for a duplicate)
        assert change.intent is not None and change.intent.intent_id == pending
        assert change.intent.epoch == 3
    # The outcome of the copy sent under this epoch ends it.
    done = state.on_report(outcome(pending), 102_000)
    assert state.pending is None and done.book and state.book.is_open


def test_ends_skips_fenced_copies_and_takes_an_older_epochs_real_outcome() -> None:
    state = bot()
    entered(state)
    pending = state.pending
    assert pending is not None
    pid = pending.intent_id
    assert not ends(outcome(pid, status=ExecutionStatus.REJECTED, epoch=2), pending)
    assert not ends(outcome(pid, final=False), pending)
    assert not ends(outcome("b1:other:buy"), pending)
    assert ends(outcome(pid, epoch=2), pending)  # the older copy was placed: its fill counts
    assert ends(outcome(pid, status=ExecutionStatus.REJECTED, epoch=3), pending)
    # An older epoch's real refusal (a rail, not the fence), e.g. republished from the
    # gateway's record for a re-send, is the outcome.
    refused = msgspec.structs.replace(
        outcome(pid, status=ExecutionStatus.REJECTED, epoch=2), reason="max_bot_order_rate"
    )
    assert ends(refused, pending)


def test_after_the_bound_the_bot_needs_attention_with_reason_and_event_and_no_entries() -> None:
    state = bot()
    pending = entered(state)
    assert state.check_pending(100_000 + BOUND - 1, BOUND, "0-0").empty
    change = state.check_pending(100_000 + BOUND, BOUND, "0-0")
    assert state.status == "needs_attention" and pending in state.status_reason
    assert change.bot["status"] == "needs_attention" and pending in change.bot["status_reason"]
    assert [e[0] for e in change.events] == ["bot_needs_attention"]
    assert state.pending is None and state.unresolved is not None
    assert change.unresolved is state.unresolved  # kept recorded (u_ fields)
    skipped = state.on_signal(candle(180_000), BUY, 300_000, "0-0")
    assert skipped.intent is None and "needs attention" in skipped.log[0]["reason"]


def test_exits_fire_while_needs_attention_with_a_new_intent_id() -> None:
    state = bot()
    in_position(state)
    sell = state.on_signal(candle(120_000), Signal(action=SignalAction.SELL, reason="x"), 0, "0")
    assert sell.intent is not None
    state.check_pending(BOUND + 1, BOUND, "0-0")
    assert state.status == "needs_attention" and state.unresolved is not None
    exit_ = state.on_price(Decimal(90), 999_000, BOUND + 2, "0-0")
    assert exit_.intent is not None and exit_.intent.is_exit
    assert exit_.intent.intent_id != state.unresolved.intent_id
    assert "STOP_LOSS" in exit_.intent.reason and state.pending is not None


def test_an_exit_while_an_exit_is_unresolved_supersedes_it_under_a_new_epoch() -> None:
    state = bot(epoch=3)
    in_position(state)
    sell = state.on_signal(candle(120_000), Signal(action=SignalAction.SELL, reason="x"), 0, "0")
    assert sell.intent is not None and sell.intent.epoch == 3
    state.check_pending(BOUND + 1, BOUND, "0-0")
    stop = state.on_price(Decimal(90), 999_000, BOUND + 2, "0-0")
    # The stop-loss moves the bot to epoch 4 in its commit (fenced on 3), so that every
    # copy of the stuck exit (epoch 3) is refused: only one of the two can sell.
    assert stop.intent is not None and stop.intent.epoch == 4 and state.epoch == 4
    assert stop.epoch_from == 3 and state.unresolved is not None
    assert state.unresolved.superseded == 4 and stop.unresolved is state.unresolved
    assert state.resend(10**9, 10**9).intent == stop.intent  # the superseded one never
    assert not state.resend(10**9, 10**9).resent
    # A refused copy of it ends it (nothing executed); the bot runs again.
    refused = outcome(sell.intent.intent_id, status=ExecutionStatus.REJECTED, final=False)
    change = state.on_report(refused, BOUND + 3)
    assert state.unresolved is None and change.unresolved is not None
    assert state.status == "running" and state.pending is not None


def test_a_late_final_report_applies_and_the_bot_runs_again_by_itself() -> None:
    state = bot()
    pending = entered(state)
    state.check_pending(100_000 + BOUND, BOUND, "0-0")
    change = state.on_report(outcome(pending), 500_000)
    assert state.unresolved is None and state.status == "running"
    assert change.book and state.book.is_open
    assert change.unresolved is not None and change.bot["status"] == "running"
    assert "late" in state.status_reason


def test_resend_uses_this_owners_epoch_never_the_one_the_intent_was_sent_under() -> None:
    state = bot(epoch=3)
    pending = entered(state)
    assert state.pending is not None
    state.pending.intent = msgspec.structs.replace(state.pending.intent, epoch=1)
    change = state.resend(200_000, 200_000)
    assert change.intent is not None and change.intent.intent_id == pending
    assert change.intent.epoch == 3 and state.pending.sent_at == 200_000
    assert state.resend(200_001, 150_000).empty  # just sent: not due yet


def test_a_stop_waits_at_most_the_bound_then_closes_the_position_with_a_new_id() -> None:
    state = bot()
    in_position(state)
    sell = state.on_signal(candle(120_000), Signal(action=SignalAction.SELL, reason="x"), 0, "0")
    assert sell.intent is not None
    waiting = state.on_stop(1, "0-0")
    assert state.status == "stopping" and "waiting for pending" in waiting.bot["status_reason"]
    change = state.check_pending(BOUND, BOUND, "0-0")
    assert state.status == "stopping" and change.intent is not None
    assert change.intent.intent_id == f"b1:stop{state.book.opened_at}:sell"
    assert "unknown" in state.status_reason and sell.intent.intent_id in state.status_reason


def test_a_stop_completes_when_the_close_on_stop_intent_itself_gets_no_outcome() -> None:
    state = bot()
    in_position(state)
    closing = state.on_stop(1, "0-0")
    assert closing.intent is not None
    stuck = closing.intent.intent_id
    change = state.check_pending(BOUND + 1, BOUND, "0-0")
    # The close moved aside unresolved; a second close never reuses its id.
    assert change.intent is not None and change.intent.intent_id != stuck
    again = state.check_pending(2 * BOUND + 2, BOUND, "0-0")
    assert again.release and state.status == "stopped"
    assert "open position" in state.status_reason and stuck in state.status_reason
    assert any(kind == "bot_stopped_unresolved" for kind, _, _ in again.events)


def test_a_flat_bot_stops_at_the_bound_saying_which_outcome_is_unknown() -> None:
    state = bot(config=CFG.model_copy(update={"close_on_stop": False}))
    pending = entered(state)
    state.on_stop(100_001, "0-0")
    change = state.check_pending(100_000 + BOUND, BOUND, "0-0")
    assert change.release and state.status == "stopped"
    assert pending in state.status_reason and "unknown" in state.status_reason


def test_catch_up_decides_missed_candles_in_order_and_logs_what_it_skips() -> None:
    state = bot()
    state.last_open_time = 60_000
    missed = [(candle(t), HOLD) for t in (120_000, 180_000, 240_000)] + [
        (candle(300_000), BUY),
        (candle(360_000), BUY),
    ]
    change = state.catch_up(missed, 10, "", 400_000, "0-0")
    assert change.intent is not None and change.intent.intent_id == "b1:300000:buy"
    kinds = [e["kind"] for e in change.log]
    assert kinds == ["hold", "hold", "hold", "entry", "skip"]
    assert "still pending" in change.log[-1]["reason"] and state.last_open_time == 360_000

    behind = bot()
    behind.last_open_time = 60_000
    some = behind.catch_up(missed, 2, "", 400_000, "0-0")
    assert "3 candles closed without an owner skipped" in some.log[0]["reason"]
    assert some.intent is not None and some.intent.intent_id == "b1:300000:buy"

    stale = bot()
    stale.last_open_time = 60_000
    none = stale.catch_up(missed, 10, "stale (the newest closed 900s ago)", 400_000, "0-0")
    assert none.intent is None and "stale" in none.log[0]["reason"]
    assert stale.last_open_time == 360_000
