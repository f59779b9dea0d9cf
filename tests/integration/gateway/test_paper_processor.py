"""The gateway's hot path in paper mode against a real Redis: exactly one order and one
terminal report per intent, rails and risk refusing with their names, exits let out."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from services.gateway.rails import Rails
from shared import keys
from shared.bots import BotField, client_order_id
from shared.messages import ExecutionStatus, OrderType, Side
from shared.money import from_units
from shared.streams import ensure_group
from tests.integration.gateway.helpers import (
    events,
    final_reports,
    intent,
    make_processor,
    reports,
    run,
    seed_market,
)


async def test_market_buy_fills_with_slippage_and_fee_and_moves_paper_balances(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    assert await run(processor, intent(1)) == 0  # nothing left pending
    [report] = await reports(redis)
    assert report.status is ExecutionStatus.FILLED and report.final
    assert report.avg_price == Decimal("50050.00000000")  # 0.1 % slippage against a BUY
    assert report.executed_qty == Decimal("0.01000")
    assert report.commission == Decimal("0.50050000")  # 0.1 % taker fee in USDT
    balances = await redis.hgetall(keys.balances("paper"))
    assert from_units(balances[b"BTC:free"]) == Decimal("0.01")
    assert from_units(balances[b"USDT:free"]) == Decimal(100_000) - Decimal("500.5") - Decimal(
        "0.5005"
    )
    record = await redis.hgetall(keys.order(client_order_id(report.intent_id)))
    assert record[b"status"] == b"FILLED"


async def test_redelivered_intent_places_one_order_and_publishes_one_report(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    same = intent(2)
    assert await run(processor, same, same) == 0  # twice in one batch
    first_entry = (await redis.xrange(keys.ORDER_INTENTS))[0]
    assert await processor.handle([first_entry]) == [first_entry[0]]  # the same entry again
    finals = await final_reports(redis)
    assert [len(v) for v in finals.values()] == [1]
    balances = await redis.hgetall(keys.balances("paper"))
    assert from_units(balances[b"BTC:free"]) == Decimal("0.01")


async def test_repeated_final_intent_on_a_new_entry_gets_the_stored_report_again(
    redis: Any,
) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    same = intent(3)
    assert await run(processor, same) == 0
    [stored] = (await final_reports(redis))[same.intent_id]
    assert await run(processor, same) == 0  # the runner sends it again: a new entry
    again = (await final_reports(redis))[same.intent_id]
    assert again == [stored, stored]  # the stored report, not a second order
    repeat_entry = (await redis.xrange(keys.ORDER_INTENTS))[-1]
    assert await processor.handle([repeat_entry]) == [repeat_entry[0]]  # redelivered
    assert len((await final_reports(redis))[same.intent_id]) == 2  # nothing more
    balances = await redis.hgetall(keys.balances("paper"))
    assert from_units(balances[b"BTC:free"]) == Decimal("0.01")


async def test_two_instances_racing_on_one_intent_place_it_once(redis: Any) -> None:
    await seed_market(redis)
    first = await make_processor(redis, instance="a")
    second = await make_processor(redis, instance="b")
    items = [intent(n) for n in range(50)]
    pending = await asyncio.gather(
        run(first, *items, consumer="a"), run(second, *items, consumer="b")
    )
    assert pending == [0, 0]
    finals = await final_reports(redis)
    # each intent sits on two entries: the loser's copy gets the stored report again
    # (or nothing, when both raced in trade.lua) -- never a second order
    assert len(finals) == 50 and all(len(v) in (1, 2) for v in finals.values())
    assert all(all(r == v[0] for r in v) for v in finals.values())
    balances = await redis.hgetall(keys.balances("paper"))
    assert from_units(balances[b"BTC:free"]) == Decimal("0.5")


async def test_quantity_is_rounded_down_to_step_and_lot_size_failure_names_the_filter(
    redis: Any,
) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    await run(processor, intent(3, qty="0.0100099"), intent(4, qty="0.00005"))
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert by_id["bot1:3:buy"].executed_qty == Decimal("0.01000")
    refused = by_id["bot1:4:buy"]
    assert refused.status is ExecutionStatus.REJECTED
    assert "NOTIONAL" in refused.reason  # 0.00005 BTC = 2.5 USDT < minNotional 5


async def test_stale_epoch_intent_is_refused_and_never_filled(redis: Any) -> None:
    await seed_market(redis)
    await redis.hset(keys.bot("bot1"), BotField.EPOCH.value, "3")
    processor = await make_processor(redis)
    await run(processor, intent(5, epoch=2), intent(6, epoch=3))
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert by_id["bot1:5:buy"].status is ExecutionStatus.REJECTED
    assert "stale epoch" in by_id["bot1:5:buy"].reason
    assert by_id["bot1:6:buy"].status is ExecutionStatus.FILLED


async def test_each_rail_refuses_with_its_name_counts_it_and_reports_an_event(redis: Any) -> None:
    await seed_market(redis)
    rails = Rails(
        allowed_symbols=frozenset({"BTCUSDT"}),
        max_order_notional=Decimal("1000"),
        bot_orders_per_window=2,
        fleet_orders_per_window=3,
    )
    processor = await make_processor(redis, rails=rails)
    await run(processor, intent("sym", symbol="ETHUSDT", qty="0.1"))
    await run(processor, intent("big", qty="0.1"))  # 5,000 USDT
    await run(processor, intent("a1"), intent("a2"), intent("a3"))  # bot: 2 / min
    await run(processor, intent("b1", bot="bot2"), intent("b2", bot="bot3"))  # fleet 3
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert by_id["bot1:sym:buy"].reason.startswith("allowed_symbols:")
    assert by_id["bot1:big:buy"].reason.startswith("max_order_notional:")
    assert by_id["bot1:a3:buy"].reason.startswith("max_bot_order_rate:")
    assert by_id["bot3:b2:buy"].reason.startswith("max_fleet_order_rate:")
    assert processor.figures.rejections == {
        "allowed_symbols": 1,
        "max_order_notional": 1,
        "max_bot_order_rate": 1,
        "max_fleet_order_rate": 1,
    }
    rail_events = [e for e in await events(redis) if e.kind == "guard_rail"]
    assert sorted(e.details["rail"] for e in rail_events) == [
        "allowed_symbols",
        "max_bot_order_rate",
        "max_fleet_order_rate",
        "max_order_notional",
    ]


async def test_halted_portfolio_refuses_entries_but_lets_an_exit_through(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    await run(processor, intent("in"))
    await redis.set(keys.RISK_HALT, 'operator: "stop" at 100% \\ now')  # quoted into JSON by Lua
    await run(processor, intent("again"), intent("out", side=Side.SELL, is_exit=True))
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert by_id["bot1:again:buy"].status is ExecutionStatus.REJECTED
    assert by_id["bot1:again:buy"].reason == 'portfolio halted: operator: "stop" at 100% \\ now'
    assert by_id["bot1:out:sell"].status is ExecutionStatus.FILLED


async def test_exit_of_a_recorded_position_passes_even_the_rails(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis, rails=Rails(max_order_notional=Decimal("600")))
    await run(processor, intent("in", qty="0.01"))  # 500 USDT
    await redis.set(keys.price("BTCUSDT"), "70000")  # the position is now worth 700
    await run(processor, intent("out", side=Side.SELL, qty="0.01", is_exit=True))
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert by_id["bot1:out:sell"].status is ExecutionStatus.FILLED


async def test_entries_breaching_limits_are_refused_with_the_limit_named(redis: Any) -> None:
    await seed_market(redis)
    await redis.hset(
        keys.RISK_LIMITS,
        mapping={
            "max_exposure_quote": "1100",
            "max_symbol_exposure_quote": "800",
            "max_position_quote": "700",
            "max_open_positions": "2",
        },
    )
    processor = await make_processor(redis)
    await run(processor, intent("huge", qty="0.02"))  # 1000 > 700 per order
    await run(processor, intent("p1", qty="0.01"))  # 500 BTC
    await run(processor, intent("p2", qty="0.008"))  # BTC would be 900 > 800
    await run(processor, intent("e1", bot="bot2", symbol="ETHUSDT", qty="0.2"))  # 500
    await run(processor, intent("e2", bot="bot3", symbol="ETHUSDT", qty="0.003"))  # 3 open
    await run(processor, intent("e3", qty="0.003"))  # total would be ~1151
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert by_id["bot1:huge:buy"].reason.startswith("max_position_quote:")
    assert by_id["bot1:p1:buy"].status is ExecutionStatus.FILLED
    assert by_id["bot1:p2:buy"].reason.startswith("max_symbol_exposure_quote:")
    assert by_id["bot2:e1:buy"].status is ExecutionStatus.FILLED
    assert by_id["bot3:e2:buy"].reason.startswith("max_open_positions:")
    assert by_id["bot1:e3:buy"].reason.startswith("max_exposure_quote:")


async def test_daily_loss_breach_halts_trading_and_emits_an_event(redis: Any) -> None:
    await seed_market(redis)
    await redis.hset(keys.RISK_LIMITS, "max_daily_loss_quote", "50")
    processor = await make_processor(redis)
    await run(processor, intent("in", qty="0.02"))  # ~1000 USDT
    await redis.set(keys.price("BTCUSDT"), "45000")  # sell at a ~100 USDT loss
    await run(processor, intent("out", side=Side.SELL, qty="0.02", is_exit=True))
    halt = await redis.get(keys.RISK_HALT)
    assert halt is not None and halt.startswith(b"max_daily_loss_quote")
    assert any(e.kind == "risk.halt" for e in await events(redis))
    await run(processor, intent("next"))
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert "halted" in by_id["bot1:next:buy"].reason


async def test_drawdown_of_fleet_equity_past_its_limit_halts_trading(redis: Any) -> None:
    await seed_market(redis)
    await redis.hset(keys.RISK_LIMITS, "max_drawdown_pct", "5")
    processor = await make_processor(redis, equity_base=Decimal(1000))
    await run(processor, intent("in", qty="0.02"))  # ~1001 USDT
    await redis.set(keys.price("BTCUSDT"), "51000")
    await run(processor, intent("out", side=Side.SELL, qty="0.02", is_exit=True))  # a gain
    assert await redis.get(keys.RISK_HALT) is None
    await run(processor, intent("in2", qty="0.02"))
    await redis.set(keys.price("BTCUSDT"), "47000")  # ~ -82: ~8 % below the peak equity
    await run(processor, intent("out2", side=Side.SELL, qty="0.02", is_exit=True))
    halt = await redis.get(keys.RISK_HALT)
    assert halt is not None and halt.startswith(b"max_drawdown_pct")
    state = await redis.hgetall(keys.RISK_STATE)
    assert from_units(state[b"realized_peak"]) > 0
    assert from_units(state[b"exposure"]) == 0 and state[b"open_positions"] == b"0"


async def test_a_loss_limit_lowered_below_todays_loss_halts_at_the_next_entry(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis)
    await run(processor, intent("in", qty="0.02"))
    await redis.set(keys.price("BTCUSDT"), "45000")
    await run(processor, intent("out", side=Side.SELL, qty="0.02", is_exit=True))
    assert await redis.get(keys.RISK_HALT) is None  # no limit yet
    await redis.hset(keys.RISK_LIMITS, "max_daily_loss_quote", "10")
    await run(processor, intent("next"))
    halt = await redis.get(keys.RISK_HALT)
    assert halt is not None and halt.startswith(b"max_daily_loss_quote")
    assert [e.kind for e in await events(redis) if e.kind == "risk.halt"] == ["risk.halt"]


async def test_limit_order_rests_then_fills_when_the_price_crosses(redis: Any) -> None:
    from services.gateway.paper_follower import PaperFollower
    from tests.integration.gateway.helpers import COSTS

    await seed_market(redis)
    processor = await make_processor(redis)
    resting = intent("lim", order_type=OrderType.LIMIT, price="49000.005", qty="0.01")
    await run(processor, resting)
    [new] = await reports(redis)
    assert new.status is ExecutionStatus.NEW and not new.final
    follower = PaperFollower(processor, COSTS)
    assert await follower.step() == 0
    await redis.set(keys.price("BTCUSDT"), "48900")
    assert await follower.step() == 1
    assert await follower.step() == 0
    finals = await final_reports(redis)
    [filled] = finals["bot1:lim:buy"]
    assert filled.status is ExecutionStatus.FILLED
    assert filled.avg_price == Decimal("49000.00")  # tick-rounded down, never above the limit


async def test_insufficient_paper_balance_is_refused_without_moving_balances(redis: Any) -> None:
    await seed_market(redis)
    processor = await make_processor(redis, balances={"USDT": Decimal(100)})
    await run(processor, intent("poor", qty="0.01"))
    [report] = await reports(redis)
    assert report.status is ExecutionStatus.REJECTED and "insufficient balance" in report.reason
    assert from_units(await redis.hget(keys.balances("paper"), "USDT:free")) == 100
    assert from_units(await redis.hget(keys.RISK_STATE, "exposure")) == 0


async def test_malformed_intent_is_dead_lettered_and_acknowledged(redis: Any) -> None:
    processor = await make_processor(redis)
    await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
    await redis.xadd(keys.ORDER_INTENTS, {"type": "order_intent", "data": "{not json"})
    [(_s, delivered)] = await redis.xreadgroup(
        keys.GATEWAY_GROUP, "t", {keys.ORDER_INTENTS: ">"}, count=10
    )
    ack = await processor.handle(delivered)
    assert ack == [delivered[0][0]]
    assert await redis.xlen(keys.DEAD_LETTER) == 1


async def test_one_batch_mixing_fills_refusals_and_duplicates_gives_each_intent_one_report(
    redis: Any,
) -> None:
    """trade.lua runs once for the whole batch: every intent in it still gets its own
    admission, exactly one terminal report and its acknowledgement."""
    await seed_market(redis)
    await redis.hset(keys.bot("bot2"), BotField.EPOCH.value, 5)
    processor = await make_processor(redis, balances={"USDT": Decimal(2000)})
    done_before = intent("early")  # ~501 USDT
    assert await run(processor, done_before) == 0
    batch = [
        intent("a"),  # fills (~500 USDT)
        intent("stale", bot="bot2", epoch=4),  # fenced
        intent("poor", qty="1"),  # ~50,000 USDT: insufficient balance
        done_before,  # already final, on a new entry: its stored report again
        intent("b", qty="0.001"),  # still fills after the refusals before it
    ]
    assert await run(processor, *batch) == 0  # nothing left pending
    finals = await final_reports(redis)
    assert set(finals) == {i.intent_id for i in [batch[0], *batch[2:]]}
    first, again = finals[done_before.intent_id]
    assert first == again  # the stored report, republished
    assert all(len(v) == 1 for k, v in finals.items() if k != done_before.intent_id)
    status = {k: v[0].status for k, v in finals.items()}
    assert status["bot1:a:buy"] is ExecutionStatus.FILLED
    assert status["bot1:b:buy"] is ExecutionStatus.FILLED
    # fenced: a non-final notice, and the client order id stays free for the new epoch
    [stale] = [r for r in await reports(redis) if r.intent_id == "bot2:stale:buy"]
    assert not stale.final
    assert (
        stale.status is ExecutionStatus.REJECTED and stale.reason == "stale epoch 4 < bot epoch 5"
    )
    assert await redis.exists(keys.order(client_order_id("bot2:stale:buy"))) == 0
    [poor] = finals["bot1:poor:buy"]
    assert poor.status is ExecutionStatus.REJECTED
    assert poor.reason.startswith("insufficient balance: ") and poor.reason.endswith(" USDT needed")
    assert (
        poor.executed_qty == 0
        and poor.fills == ()
        and poor.client_order_id == client_order_id("bot1:poor:buy")
    )
    btc = await redis.hget(keys.balances("paper"), "BTC:free")
    assert from_units(btc) == Decimal("0.021")  # early + a + b, nothing for poor


async def test_a_batch_larger_than_one_trade_call_fills_every_intent_once(redis: Any) -> None:
    from services.gateway.store import TRADE_CHUNK

    await seed_market(redis)
    processor = await make_processor(redis)
    count = 2 * TRADE_CHUNK + 22  # three trade.lua calls in one round trip
    assert await run(processor, *[intent(f"c{n}") for n in range(count)]) == 0
    finals = await final_reports(redis)
    assert len(finals) == count and all(len(v) == 1 for v in finals.values())
    assert all(v[0].status is ExecutionStatus.FILLED for v in finals.values())
    btc = await redis.hget(keys.balances("paper"), "BTC:free")
    assert from_units(btc) == Decimal("0.01") * count


async def test_a_stale_copy_in_the_same_batch_does_not_fence_out_the_new_epochs_resend(
    redis: Any,
) -> None:
    """The adopting runner re-sends an intent under the new epoch while the old copy is
    still waiting: both in one batch, the new one is placed (one order, one report)."""
    await seed_market(redis)
    await redis.hset(keys.bot("bot3"), BotField.EPOCH.value, 5)
    processor = await make_processor(redis)
    old = intent("adopted", bot="bot3", epoch=4)
    new = intent("adopted", bot="bot3", epoch=5)
    assert old.intent_id == new.intent_id
    assert await run(processor, old, new) == 0
    [report] = (await final_reports(redis))[new.intent_id]
    assert report.status is ExecutionStatus.FILLED and report.epoch == 5
    btc = await redis.hget(keys.balances("paper"), "BTC:free")
    assert from_units(btc) == Decimal("0.01")
