"""Shared set-up of the gateway's integration tests: symbol rules, prices, intents, and
an in-process :class:`Processor` over the test's real Redis."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.gateway.paper import PaperCosts
from services.gateway.paper_executor import PaperExecutor
from services.gateway.processor import Processor
from services.gateway.rails import Rails
from services.gateway.rules_cache import RulesCache
from services.gateway.store import GatewayStore
from shared import keys
from shared.binance.rules import SymbolRules, rules_to_json
from shared.messages import ExecutionReport, Message, OrderIntent, OrderType, Side, decode, encode
from shared.streams import ensure_group

BTC = SymbolRules(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    base_precision=8,
    quote_precision=8,
    tick_size=Decimal("0.01"),
    min_price=Decimal("0.01"),
    max_price=Decimal("1000000"),
    step_size=Decimal("0.00001"),
    min_qty=Decimal("0.00001"),
    max_qty=Decimal("9000"),
    min_notional=Decimal("5"),
)
ETH = SymbolRules(
    symbol="ETHUSDT",
    base_asset="ETH",
    quote_asset="USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    min_qty=Decimal("0.0001"),
    max_qty=Decimal("9000"),
    min_notional=Decimal("5"),
)
COSTS = PaperCosts(
    taker_fee=Decimal("0.001"), maker_fee=Decimal("0.0005"), slippage=Decimal("0.001")
)


async def seed_market(redis: Any, prices: dict[str, str] | None = None) -> None:
    for rules in (BTC, ETH):
        await redis.hset(keys.EXCHANGE_SYMBOLS, rules.symbol, rules_to_json(rules))
    for symbol, price in (prices or {"BTCUSDT": "50000", "ETHUSDT": "2500"}).items():
        await redis.set(keys.price(symbol), price)


def intent(
    n: int | str,
    *,
    bot: str = "bot1",
    side: Side = Side.BUY,
    qty: str | None = "0.01",
    quote: str | None = None,
    symbol: str = "BTCUSDT",
    epoch: int = 1,
    is_exit: bool = False,
    order_type: OrderType = OrderType.MARKET,
    price: str | None = None,
) -> OrderIntent:
    return OrderIntent(
        intent_id=f"{bot}:{n}:{side.value.lower()}",
        bot_id=bot,
        epoch=epoch,
        symbol=symbol,
        side=side,
        order_type=order_type,
        quantity=Decimal(qty) if qty is not None else None,
        quote_quantity=Decimal(quote) if quote is not None else None,
        price=Decimal(price) if price is not None else None,
        is_exit=is_exit,
    )


async def make_processor(
    redis: Any,
    *,
    rails: Rails | None = None,
    instance: str = "t1",
    balances: dict[str, Decimal] | None = None,
    equity_base: Decimal = Decimal(0),
) -> Processor:
    store = GatewayStore(redis, mode="paper", instance=instance, equity_base=equity_base)
    await store.load_scripts()
    await store.seed_paper_balances(balances or {"USDT": Decimal(100_000)})
    return Processor(store, RulesCache(redis), rails or Rails(), PaperExecutor(COSTS))


async def run(processor: Processor, *intents: Message, consumer: str = "t") -> int:
    """Deliver ``intents`` through the real stream and consumer group to ``processor``,
    acknowledge what it hands back, and return how many entries are still pending."""
    redis = processor.redis
    await ensure_group(redis, keys.ORDER_INTENTS, keys.GATEWAY_GROUP)
    for item in intents:
        await redis.xadd(keys.ORDER_INTENTS, encode(item))
    reply = await redis.xreadgroup(
        keys.GATEWAY_GROUP, consumer, {keys.ORDER_INTENTS: ">"}, count=10_000
    )
    delivered = reply[0][1] if reply else []
    ack = await processor.handle(delivered) if delivered else []
    if ack:
        await redis.xack(keys.ORDER_INTENTS, keys.GATEWAY_GROUP, *ack)
    summary = await redis.xpending_range(
        keys.ORDER_INTENTS,
        keys.GATEWAY_GROUP,
        min="-",
        max="+",
        count=10_000,
        consumername=consumer,
    )
    return len(summary)


async def reports(redis: Any) -> list[ExecutionReport]:
    out = []
    for _id, fields in await redis.xrange(keys.EXECUTIONS):
        message = decode(fields)
        assert isinstance(message, ExecutionReport)
        out.append(message)
    return out


async def final_reports(redis: Any) -> dict[str, list[ExecutionReport]]:
    by_intent: dict[str, list[ExecutionReport]] = {}
    for report in await reports(redis):
        if report.final:
            by_intent.setdefault(report.intent_id, []).append(report)
    return by_intent


async def events(redis: Any) -> list[Any]:
    return [decode(fields) for _id, fields in await redis.xrange(keys.EVENTS)]
