"""Money in the gateway's scripts is exact: amounts of 1e9 and more with 1e-8 steps, many
fills, and the figures in Redis (exposure, the position, realized PnL, paper balances)
equal the Decimal computation to the last unit; a verified exit is exact at the last
unit; a sell whose position another instance moves is recomputed, not misbooked.

The amounts are chosen so that doubles get them wrong (1e9 + 1e-8 is not a double), as
the scripts did when they kept money as Lua numbers."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from services.gateway import scripts
from services.gateway.paper import PaperCosts
from services.gateway.paper_executor import PaperExecutor
from services.gateway.processor import Processor
from services.gateway.rails import Rails
from services.gateway.risk_state import Position
from services.gateway.rules_cache import RulesCache
from services.gateway.store import Ending, GatewayStore, TradeEntry
from shared import keys
from shared.binance.rules import SymbolRules, rules_to_json
from shared.bots import client_order_id
from shared.messages import ExecutionReport, ExecutionStatus, Side
from shared.money import from_units
from tests.integration.gateway.helpers import intent, reports, run

BIG = SymbolRules(
    symbol="BIGUSDT",
    base_asset="BIG",
    quote_asset="USDT",
    tick_size=Decimal("0.00000001"),
    min_price=Decimal("0.00000001"),
    max_price=Decimal("1000000000"),
    step_size=Decimal("0.00000001"),
    min_qty=Decimal("0.00000001"),
    max_qty=Decimal("90000000000"),
    min_notional=Decimal("5"),
)
COSTS = PaperCosts(taker_fee=Decimal("0.001"), maker_fee=Decimal("0.001"), slippage=Decimal(0))
CENT = Decimal("0.00000001")
START_USDT = Decimal("50000000000.00000001")
QTY = Decimal("1000000000.00000001")  # 1e9 + 1e-8: a double holds 1e9
SYMBOL_FIELDS = ("pos:bot1:BIGUSDT:qty", "pos:bot1:BIGUSDT:cost", "exposure:BIGUSDT")


def _q(x: Decimal) -> Decimal:
    return x.quantize(CENT, ROUND_HALF_EVEN)


class Book:
    """The Decimal computation the figures in Redis must equal."""

    def __init__(self) -> None:
        self.usdt, self.big = START_USDT, Decimal(0)
        self.qty, self.cost, self.realized = Decimal(0), Decimal(0), Decimal(0)

    def apply(self, report: ExecutionReport) -> None:
        if report.status is not ExecutionStatus.FILLED:
            return
        qty, quote, fee = report.executed_qty, report.cumulative_quote, report.commission
        if report.side is Side.BUY:
            self.usdt -= quote + fee
            self.big += qty
            self.qty += qty
            self.cost += quote + fee
            return
        self.usdt += quote - fee
        self.big -= qty
        sold = min(qty, self.qty)
        cost_out = self.cost if sold == self.qty else _q(self.cost * sold / self.qty)
        self.realized += _q((quote - fee) * sold / qty) - cost_out
        self.qty -= sold
        self.cost -= cost_out


async def _figures(redis: Any) -> dict[str, Decimal]:
    state = await redis.hgetall(keys.RISK_STATE)
    balances = await redis.hgetall(keys.balances("paper"))
    return {
        "usdt": from_units(balances.get(b"USDT:free")),
        "big": from_units(balances.get(b"BIG:free")),
        "qty": from_units(state.get(b"pos:bot1:BIGUSDT:qty")),
        "cost": from_units(state.get(b"pos:bot1:BIGUSDT:cost")),
        "exposure": from_units(state.get(b"exposure")),
        "symbol_exposure": from_units(state.get(b"exposure:BIGUSDT")),
        "realized": from_units(state.get(b"realized_total")),
    }


def _expected(book: Book) -> dict[str, Decimal]:
    return {
        "usdt": book.usdt,
        "big": book.big,
        "qty": book.qty,
        "cost": book.cost,
        "exposure": book.cost,
        "symbol_exposure": book.cost,
        "realized": book.realized,
    }


async def _processor(redis: Any, rails: Rails | None = None, instance: str = "t1") -> Processor:
    store = GatewayStore(redis, mode="paper", instance=instance)
    await store.load_scripts()
    await store.seed_paper_balances({"USDT": START_USDT})
    return Processor(store, RulesCache(redis), rails or Rails(), PaperExecutor(COSTS))


async def _seed(redis: Any, price: str) -> None:
    await redis.hset(keys.EXCHANGE_SYMBOLS, BIG.symbol, rules_to_json(BIG))
    await redis.set(keys.price(BIG.symbol), price)


async def test_many_large_fills_leave_figures_equal_to_the_decimal_computation(redis: Any) -> None:
    await _seed(redis, "1.00000001")
    processor = await _processor(redis)
    # 12 buys of 1e9 + 1e-8 in one batch (one trade.lua chain), then 5 in their own
    await run(processor, *(intent(f"b{i}", qty=str(QTY), symbol="BIGUSDT") for i in range(12)))
    for i in range(12, 17):
        await run(processor, intent(f"b{i}", qty=str(QTY), symbol="BIGUSDT"))
    book = Book()
    for report in await reports(redis):
        assert report.status is ExecutionStatus.FILLED, report.reason
        book.apply(report)
    assert book.qty == QTY * 17 and book.cost > Decimal("1.7e10")
    assert await _figures(redis) == _expected(book)
    # the same sums in doubles miss by far more than a unit: what the scripts did before
    float_qty = sum(float(QTY) for _ in range(17))  # the counter-example (test only)
    assert Decimal(repr(float_qty)) != book.qty

    # partial sells (a proportional cost each, rounded to a unit), four in one batch
    await redis.set(keys.price(BIG.symbol), "1.10000001")
    part = Decimal("333333333.33333333")
    await run(
        processor,
        *(intent(f"s{i}", side=Side.SELL, qty=str(part), symbol="BIGUSDT") for i in range(4)),
    )
    await run(processor, intent("s4", side=Side.SELL, qty=str(part), symbol="BIGUSDT"))
    book = Book()
    for report in await reports(redis):
        assert report.status is ExecutionStatus.FILLED, report.reason
        book.apply(report)
    assert book.realized != 0
    assert await _figures(redis) == _expected(book)


async def test_a_verified_exit_is_exact_at_the_last_unit(redis: Any) -> None:
    await _seed(redis, "1.00000001")
    processor = await _processor(redis)
    await run(processor, *(intent(f"b{i}", qty=str(QTY), symbol="BIGUSDT") for i in range(3)))
    held = QTY * 3  # 3000000000.00000003
    # a rail every order breaks: only an exit the gateway's own position covers passes it
    railed = await _processor(redis, Rails(max_order_notional=Decimal(1000)))
    over = held + CENT  # a double cannot tell it from held
    await run(railed, intent("x1", side=Side.SELL, qty=str(over), symbol="BIGUSDT", is_exit=True))
    await run(railed, intent("x2", side=Side.SELL, qty=str(held), symbol="BIGUSDT", is_exit=True))
    by_id = {r.intent_id: r for r in await reports(redis)}
    assert by_id["bot1:x1:sell"].status is ExecutionStatus.REJECTED
    assert by_id["bot1:x1:sell"].reason.startswith("max_order_notional")
    assert by_id["bot1:x2:sell"].status is ExecutionStatus.FILLED
    assert by_id["bot1:x2:sell"].executed_qty == held
    book = Book()
    for report in await reports(redis):
        book.apply(report)
    figures = await _figures(redis)
    assert figures == _expected(book)
    assert figures["qty"] == 0 and figures["cost"] == 0 and figures["exposure"] == 0
    state = await redis.hgetall(keys.RISK_STATE)
    assert b"pos:bot1:BIGUSDT:qty" not in state and state[b"open_positions"] == b"0"


class RacedStore(GatewayStore):
    """A store whose batch, after its positions were read, is overtaken by another
    instance filling a buy of the same position (the race the CAS exists for)."""

    other: Processor
    conflicts = 0

    async def trade_many(
        self,
        entries: list[TradeEntry],
        now_ms: int,
        positions: dict[tuple[str, str], Position],
    ) -> list[tuple[str, str, str]]:
        await run(self.other, intent("race", qty=str(QTY), symbol="BIGUSDT"), consumer="other")
        replies = await super().trade_many(entries, now_ms, positions)
        self.conflicts += sum(1 for what, _s, _d in replies if what == "conflict")
        return replies


async def test_a_sell_whose_position_moved_under_it_is_recomputed_not_misbooked(
    redis: Any,
) -> None:
    await _seed(redis, "1.00000001")
    first = await _processor(redis)
    await run(first, intent("b0", qty=str(QTY), symbol="BIGUSDT"))
    store = RacedStore(redis, mode="paper", instance="t2")
    await store.load_scripts()
    store.other = await _processor(redis, instance="t3")
    raced = Processor(store, RulesCache(redis), Rails(), PaperExecutor(COSTS))
    await redis.set(keys.price(BIG.symbol), "1.30000007")
    part = Decimal("700000000.00000007")
    pending = await run(raced, intent("s0", side=Side.SELL, qty=str(part), symbol="BIGUSDT"))
    assert store.conflicts == 1  # computed from one buy, found two: refused, then redone
    assert pending == 0
    finals = [r for r in await reports(redis) if r.final]
    assert sorted(r.intent_id for r in finals) == ["bot1:b0:buy", "bot1:race:buy", "bot1:s0:sell"]
    book = Book()
    for report in finals:  # in stream order: b0, race, s0
        book.apply(report)
    assert book.qty == QTY * 2 - part
    assert await _figures(redis) == _expected(book)


async def test_amounts_an_older_gateway_stored_as_decimals_become_units_once(redis: Any) -> None:
    await redis.hset(
        keys.RISK_STATE,
        mapping={
            "exposure": "1000000000.00000001",
            "open_positions": "2",
            "realized_total": "-0.50000000",
        },
    )
    await redis.hset(
        keys.balances("paper"), mapping={"USDT:free": "100000", "BTC:free": "0.01000000"}
    )
    await redis.hset(keys.order("c1"), mapping={"status": "ACCEPTED", "reserved": "500.25000000"})
    await redis.sadd(keys.active_orders("paper"), "c1")
    store = GatewayStore(redis, mode="paper", instance="t1")
    await store.load_scripts()
    assert await store.upgrade_money() == 5
    state = await redis.hgetall(keys.RISK_STATE)
    assert state == {
        b"exposure": b"100000000000000001",
        b"open_positions": b"2",
        b"realized_total": b"-50000000",
    }
    balances = await redis.hgetall(keys.balances("paper"))
    assert balances == {b"USDT:free": b"10000000000000", b"BTC:free": b"1000000"}
    assert await redis.hget(keys.order("c1"), "reserved") == b"50025000000"
    assert await store.upgrade_money() == -1  # never twice: units are not scaled again
    assert await redis.hget(keys.RISK_STATE, "exposure") == b"100000000000000001"


class StaleOnceStore(GatewayStore):
    """A store whose first read of positions is stale (what a read racing another
    instance's fill returns)."""

    reads = 0

    async def positions(self, wanted: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Position]:
        self.reads += 1
        found = await super().positions(wanted)
        if self.reads == 1:
            return {key: Position(qty=(p.qty or 0) - 1, cost=p.cost) for key, p in found.items()}
        return found


async def test_a_completion_computed_from_a_stale_position_is_refused_and_redone(
    redis: Any,
) -> None:
    await _seed(redis, "1.00000001")
    first = await _processor(redis)
    await run(first, intent("b0", qty=str(QTY), symbol="BIGUSDT"))
    store = StaleOnceStore(redis, mode="paper", instance="t2")
    await store.load_scripts()
    sell = intent("s0", side=Side.SELL, qty="1000", symbol="BIGUSDT")
    cid = client_order_id(sell.intent_id)
    await redis.hset(keys.order(cid), mapping={"status": "ACCEPTED", "reserved": "0"})
    fill = ExecutionReport(
        intent_id=sell.intent_id,
        client_order_id=cid,
        bot_id="bot1",
        symbol="BIGUSDT",
        side=Side.SELL,
        status=ExecutionStatus.FILLED,
        final=True,
        mode="paper",
        executed_qty=Decimal(1000),
        cumulative_quote=Decimal("1000.00001"),
        ts=1,
    )
    ending = Ending(cid, fill, position_qty=Decimal(1000), quote_amount=Decimal("1000.00001"))
    before = await _figures(redis)
    [completion] = await store.finalize_many([ending], 1)
    assert completion.outcome == "done" and store.reads == 2
    cost_out = _q(before["cost"] * 1000 / before["qty"])
    figures = await _figures(redis)
    assert figures["qty"] == QTY - 1000 and figures["cost"] == before["cost"] - cost_out
    assert figures["realized"] == Decimal("1000.00001") - cost_out


async def test_an_unreadable_limit_refuses_entries_rather_than_counting_as_none(
    redis: Any,
) -> None:
    await _seed(redis, "1.00000001")
    await redis.hset(keys.RISK_LIMITS, "max_exposure_quote", "1e3")  # not what the API writes
    processor = await _processor(redis)
    await run(processor, intent("b0", qty="10", symbol="BIGUSDT"))
    [report] = await reports(redis)
    assert report.status is ExecutionStatus.REJECTED
    assert report.reason == "risk limit unreadable: 1e3"


async def test_the_lua_comparison_of_unit_strings_is_exact_in_sign_length_and_digits(
    redis: Any,
) -> None:
    pairs = [
        ("0", "0"),
        ("100000000000000001", "100000000000000000"),  # 1e9 + 1e-8 vs 1e9: one unit
        ("-100000000000000001", "-100000000000000000"),
        ("-5", "3"),
        ("3", "-5"),
        ("-100", "-99"),
        ("99", "100"),
        ("", "0"),
        ("7000000000000000000", "6999999999999999999"),
    ]
    script = (
        scripts.prelude()
        + scripts._body("money.lua")
        + "local out = {}\n"
        + "for i = 1, #ARGV, 2 do out[#out + 1] = cmp(ARGV[i], ARGV[i + 1]) end\n"
        + "out[#out + 1] = units_of('1000.5') out[#out + 1] = units_of('-0.000000015')\n"
        + "out[#out + 1] = units_of('007') out[#out + 1] = tostring(units_of('1e3'))\n"
        + "out[#out + 1] = decimal('-150000000') out[#out + 1] = decimal('5')\n"
        + "return out\n"
    )
    flat = [x for pair in pairs for x in pair]
    reply = await redis.eval(script, 0, *flat)
    expected = [(int(a or 0) > int(b or 0)) - (int(a or 0) < int(b or 0)) for a, b in pairs]
    assert reply[: len(pairs)] == expected
    assert [r.decode() if isinstance(r, bytes) else r for r in reply[len(pairs) :]] == [
        "100050000000",
        "-1",  # places past 1e-8 are dropped (limits only)
        "700000000",
        "nil",
        "-1.50000000",
        "0.00000005",
    ]
