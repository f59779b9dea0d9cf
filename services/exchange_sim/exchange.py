"""The simulated exchange: markets, rules, accounts, limits and faults in one object.

Owns the wiring between the pure parts and the one thing that moves them:
:meth:`Exchange.tick` advances every symbol to the clock's current second (kline
and ticker events, resting orders matched against the new prices, frozen markets
applied) and returns what the shell must send. Request handling that needs several
parts (place an order: validate, check filters at the current price, count it, hand
it to the book) lives here too, so the HTTP shell only parses and answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from services.exchange_sim.book import Book, NewOrder, Order, UserEvent
from services.exchange_sim.candles import SymbolMarket
from services.exchange_sim.clock import ExchangeClock
from services.exchange_sim.faults import Faults
from services.exchange_sim.feed import Feed
from services.exchange_sim.limits import Limits
from services.exchange_sim.market import HOUR_S, SymbolSpec
from services.exchange_sim.requests import ApiKey, check_filters
from shared.binance.rules import SymbolRules


def rules_for(spec: SymbolSpec) -> SymbolRules:
    """Real-looking filters (reference §11 BTCUSDT values, scaled to the symbol)."""
    return SymbolRules(
        symbol=spec.symbol,
        base_asset=spec.base,
        quote_asset=spec.quote,
        base_precision=8,
        quote_precision=8,
        order_types=("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"),
        tick_size=spec.tick,
        min_price=spec.tick,
        max_price=Decimal(1_000_000) if spec.base_price > 1 else Decimal(10_000),
        step_size=spec.step,
        min_qty=spec.step,
        max_qty=Decimal(9000) if spec.step < 1 else Decimal(90_000_000),
        market_step_size=Decimal(0),
        market_min_qty=Decimal(0),
        market_max_qty=Decimal(100) if spec.step < 1 else Decimal(10_000_000),
        notional_filter="NOTIONAL",
        min_notional=spec.min_notional,
        max_notional=Decimal(9_000_000),
        apply_min_to_market=True,
        apply_max_to_market=False,
        avg_price_mins=5,
        max_num_orders=200,
        max_num_algo_orders=5,
        default_stp_mode="NONE",
        allowed_stp_modes=("NONE",),
    )


@dataclass
class Exchange:
    clock: ExchangeClock
    markets: dict[str, SymbolMarket]
    keys: dict[str, ApiKey]
    limits: Limits
    faults: Faults
    update_every_s: int = 1
    rules: dict[str, SymbolRules] = field(init=False)
    book: Book = field(init=False)
    feed: Feed = field(init=False)
    _matched: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rules = {s: rules_for(m.spec) for s, m in self.markets.items()}
        self.book = Book(self.rules)
        self.feed = Feed(self.markets, self.update_every_s)
        self.feed.book_qty = {s: r.market_max_qty for s, r in self.rules.items()}

    def active_keys(self) -> dict[str, ApiKey]:
        """The registered keys minus those revoked by the ``revoked_keys`` fault."""
        revoked = self.faults.config.revoked_keys
        if not revoked:
            return self.keys
        return {name: key for name, key in self.keys.items() if name not in revoked}

    # --- time and prices ---------------------------------------------------------------------

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def wall_fallback_ms(self) -> int | None:
        """The wall clock a signed request's timestamp may also be checked against,
        or None for Binance's rule (exchange clock only): with a ``clock_offset_ms``
        fault (the skew must show), or when the exchange clock is the wall clock."""
        import time

        wall = int(time.time() * 1000)
        if self.clock.offset_ms:
            return None
        if self.clock.speed == 1 and abs(self.clock.now_ms() - wall) < 1000:
            return None
        return wall

    def price(self, symbol: str, now_ms: int | None = None) -> Decimal:
        """The price a client sees now (the frozen price while frozen)."""
        market = self.markets[symbol]
        now_s = (self.now_ms() if now_ms is None else now_ms) // 1000
        return market.price(market.visible_second(now_s))

    # --- orders --------------------------------------------------------------------------------

    def place(self, account: str, req: NewOrder, now_ms: int) -> Order:
        """Filters at the current price, then the matching engine."""
        price = self.price(req.symbol, now_ms)
        check_filters(req, self.rules[req.symbol], price)
        self.book.check_new(account, req)
        return self.book.place(account, req, price, now_ms)

    def test_order(self, account: str, req: NewOrder, now_ms: int) -> None:
        check_filters(req, self.rules[req.symbol], self.price(req.symbol, now_ms))

    # --- the clock moves -----------------------------------------------------------------------

    def apply_freeze(self, now_s: int) -> None:
        for symbol, market in self.markets.items():
            frozen = self.faults.is_frozen(symbol)
            if frozen and market.frozen_at is None:
                market.frozen_at = now_s
            elif not frozen and market.frozen_at is not None:
                market.frozen_at = None
                self.feed.thaw(symbol, now_s)
                self._matched[symbol] = now_s

    def tick(
        self, quiet: set[str] | None = None
    ) -> tuple[list[tuple[str, bytes, bool]], list[UserEvent]]:
        """Advance to now: market events to fan out, user events to deliver
        (``quiet``: streams nobody can take open-candle updates for right now)."""
        now_s = self.now_ms() // 1000
        self.apply_freeze(now_s)
        frozen = {s for s, m in self.markets.items() if m.frozen_at is not None}
        events = self.feed.advance(now_s, frozen, quiet)
        for symbol, open_orders in self.book.open.items():
            last = self._matched.get(symbol, now_s)
            self._matched[symbol] = now_s
            if not open_orders or symbol in frozen or now_s <= last:
                continue
            market = self.markets[symbol]
            prices: list[Decimal] = []
            s = last + 1
            while s <= now_s:
                hour = s // HOUR_S
                end = min(now_s + 1, (hour + 1) * HOUR_S)
                blk = market.source.block(hour)
                tick = market.spec.tick
                prices.extend(
                    Decimal(p) * tick
                    for p in blk.p[s - hour * HOUR_S : end - hour * HOUR_S].tolist()
                )
                s = end
            self.book.on_prices(symbol, last + 1, prices)
        return events, self.book.drain_events()
