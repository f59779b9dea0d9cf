"""Accounts, orders and their matching against the price path (all ``Decimal``).

Owns what the matching engine decides (reference §3.6-3.12, §8): balances with
free/locked, the order lifecycle (NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED),
fills with commission and trade ids, the open-order duplicate client id rule, the
order-count filter (MAX_NUM_ORDERS -> ``-2010``), and the user-data events each
change produces. Liquidity is unlimited at the path's price: a marketable order
fills completely at the current price as taker; a resting limit order fills
completely at its limit price, as maker, in the first second the path trades
through it. Stop-limit orders wake up when the path crosses their stop price.

The engine is pure: prices come in as arguments (``price`` of the current second,
arrays of new seconds in :meth:`Book.on_prices`) and times as exchange ms.
"""

from __future__ import annotations

import itertools
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from services.exchange_sim.apierror import (
    INSUFFICIENT_BALANCE,
    NO_SUCH_ORDER,
    UNKNOWN_ORDER,
    ApiError,
    rejected,
)
from shared.binance.rules import SymbolRules, round_to_step
from shared.fills import fill_at
from shared.messages import Side

ZERO = Decimal(0)
E8 = Decimal("0.00000001")
COMMISSION = Decimal("0.001")  # 10 bps maker and taker, charged in the asset received
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
_ALPHABET = string.ascii_letters + string.digits


def new_client_id() -> str:
    """A 22-character id like Binance's auto-generated ones."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(22))


def d8(value: Decimal) -> str:
    """Binance's 8-decimal string."""
    return format(value.quantize(E8, rounding=ROUND_DOWN), "f")


@dataclass
class Fill:
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: int
    time: int
    is_maker: bool
    order_id: int
    symbol: str
    is_buyer: bool


@dataclass
class Order:
    account: str
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    stop_price: Decimal
    quote_order_qty: Decimal
    time: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_time: int = 0
    working_time: int = -1
    locked: Decimal = ZERO  # amount of the locked asset still held for this order
    fills: list[Fill] = field(default_factory=list)
    expiry_reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_working(self) -> bool:
        return self.working_time >= 0

    @property
    def is_stop(self) -> bool:
        return self.type in ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")


@dataclass
class Account:
    balances: dict[str, list[Decimal]] = field(default_factory=dict)  # asset -> [free, locked]
    update_time: int = 0

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def _slot(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [ZERO, ZERO])

    def lock(self, asset: str, amount: Decimal) -> None:
        slot = self._slot(asset)
        if slot[0] < amount:
            raise rejected(INSUFFICIENT_BALANCE)
        slot[0] -= amount
        slot[1] += amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        slot = self._slot(asset)
        slot[1] -= amount
        slot[0] += amount

    def spend_locked(self, asset: str, amount: Decimal) -> None:
        self._slot(asset)[1] -= amount

    def spend_free(self, asset: str, amount: Decimal) -> None:
        slot = self._slot(asset)
        if slot[0] < amount:
            raise rejected(INSUFFICIENT_BALANCE)
        slot[0] -= amount

    def credit(self, asset: str, amount: Decimal) -> None:
        self._slot(asset)[0] += amount


@dataclass(frozen=True)
class NewOrder:
    """A validated ``POST /api/v3/order`` (see :mod:`.requests`)."""

    symbol: str
    side: str
    type: str
    time_in_force: str = ""
    quantity: Decimal | None = None
    quote_order_qty: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str = ""


@dataclass(frozen=True)
class UserEvent:
    """Something an account's user-data subscribers must hear: ``kind`` is
    ``"order"`` (an executionReport of ``order`` with ``exec_type``) or
    ``"balances"`` (an outboundAccountPosition of ``assets``)."""

    account: str
    kind: str
    time: int
    order: Order | None = None
    exec_type: str = ""
    fill: Fill | None = None
    assets: tuple[str, ...] = ()
    cancel_client_id: str = ""


class Book:
    """All accounts and orders of the simulator."""

    def __init__(self, rules: dict[str, SymbolRules]) -> None:
        self.rules = rules
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self.history: list[Order] = []  # every accepted order, in order (GET /sim/orders)
        self.open: dict[str, dict[int, Order]] = {s: {} for s in rules}
        self.trades: dict[str, list[Fill]] = {}
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._exec_ids = itertools.count(1)
        self.events: list[UserEvent] = []

    # --- accounts ------------------------------------------------------------------------

    def add_account(self, name: str, balances: dict[str, Decimal]) -> Account:
        account = Account({asset: [amount, ZERO] for asset, amount in balances.items()})
        self.accounts[name] = account
        self.trades[name] = []
        return account

    def exec_id(self) -> int:
        return next(self._exec_ids)

    def drain_events(self) -> list[UserEvent]:
        events, self.events = self.events, []
        return events

    def _balances_changed(self, account: str, now: int, *assets: str) -> None:
        self.accounts[account].update_time = now
        self.events.append(UserEvent(account, "balances", now, assets=tuple(dict.fromkeys(assets))))

    def _order_event(
        self, order: Order, exec_type: str, now: int, fill: Fill | None = None, cancel_id: str = ""
    ) -> None:
        self.events.append(
            UserEvent(
                order.account, "order", now, order, exec_type, fill, cancel_client_id=cancel_id
            )
        )

    # --- placing -------------------------------------------------------------------------

    def check_new(self, account: str, req: NewOrder) -> None:
        """The matching engine's own checks that need no price (-2010)."""
        rules = self.rules[req.symbol]
        if req.client_order_id and any(
            o.client_order_id == req.client_order_id and o.account == account
            for o in self.open[req.symbol].values()
        ):
            raise rejected("Duplicate order sent.")
        if rules.max_num_orders and len(self.open[req.symbol]) >= rules.max_num_orders:
            raise rejected("Filter failure: MAX_NUM_ORDERS")

    def place(self, account: str, req: NewOrder, price: Decimal, now: int) -> Order:
        """Accept an order at exchange time ``now`` with the path at ``price``."""
        self.check_new(account, req)
        rules = self.rules[req.symbol]
        acct = self.accounts[account]
        qty = req.quantity
        if req.type == "MARKET" and qty is None:
            assert req.quote_order_qty is not None
            qty = round_to_step(req.quote_order_qty / price, rules.step_size or E8)
            if qty <= 0:
                raise ApiError(-1013, "Filter failure: LOT_SIZE")
        assert qty is not None
        limit = req.price or ZERO
        stop = req.stop_price or ZERO
        if req.type in ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") and _triggered(
            req.type, req.side, stop, price
        ):
            raise rejected("Order would trigger immediately.")
        marketable = req.type == "MARKET" or (
            req.type in ("LIMIT", "LIMIT_MAKER")
            and (limit >= price if req.side == "BUY" else limit <= price)
        )
        if req.type == "LIMIT_MAKER" and marketable:
            raise rejected("Order would immediately match and take.")
        # Funds: a BUY locks quote at its limit (or the market price), a SELL locks base.
        if req.side == "BUY":
            lock_asset, lock_amount = (
                rules.quote_asset,
                qty * (price if req.type == "MARKET" else limit),
            )
        else:
            lock_asset, lock_amount = rules.base_asset, qty
        acct.lock(lock_asset, lock_amount)
        order = Order(
            account=account,
            symbol=req.symbol,
            order_id=next(self._order_ids),
            client_order_id=req.client_order_id or new_client_id(),
            side=req.side,
            type=req.type,
            time_in_force=req.time_in_force or "GTC",
            qty=qty,
            price=limit,
            stop_price=stop,
            quote_order_qty=req.quote_order_qty or ZERO,
            time=now,
            update_time=now,
            locked=lock_amount,
        )
        if not order.is_stop:
            order.working_time = now
        self.orders[order.order_id] = order
        self.history.append(order)
        self._order_event(order, "NEW", now)
        self._balances_changed(account, now, lock_asset)
        if marketable and not order.is_stop:
            self._fill(order, price, now, is_maker=False)
        elif req.type == "LIMIT" and req.time_in_force in ("IOC", "FOK"):
            self._finish(order, "EXPIRED", now)
            order.expiry_reason = (
                "UNFILLED_IOC_QUANTITY_EXPIRED"
                if req.time_in_force == "IOC"
                else "UNFILLED_FOK_ORDER_EXPIRED"
            )
        else:
            self.open[order.symbol][order.order_id] = order
        return order

    def _fill(self, order: Order, price: Decimal, now: int, *, is_maker: bool) -> None:
        rules = self.rules[order.symbol]
        acct = self.accounts[order.account]
        qty = order.qty - order.executed_qty
        # The shared fill model's amounts (docs/backtest.md, "Fill model"): the fee is on
        # the asset received, base for a BUY, quote for a SELL.
        side = Side.BUY if order.side == "BUY" else Side.SELL
        amounts = fill_at(side, price, qty, COMMISSION, "base", rules.base_asset, rules.quote_asset)
        quote = amounts.quote
        if order.side == "BUY":
            got_asset, got = rules.base_asset, qty
            acct.spend_locked(rules.quote_asset, order.locked)
            acct.credit(rules.quote_asset, order.locked - quote)  # refund below the limit
            paid_asset = rules.quote_asset
        else:
            got_asset, got = rules.quote_asset, quote
            acct.spend_locked(rules.base_asset, order.locked)
            paid_asset = rules.base_asset
        order.locked = ZERO
        commission = amounts.commission
        acct.credit(got_asset, got - commission)
        fill = Fill(
            price=price,
            qty=qty,
            commission=commission,
            commission_asset=got_asset,
            trade_id=next(self._trade_ids),
            time=now,
            is_maker=is_maker,
            order_id=order.order_id,
            symbol=order.symbol,
            is_buyer=order.side == "BUY",
        )
        order.fills.append(fill)
        self.trades[order.account].append(fill)
        order.executed_qty += qty
        order.cum_quote += quote
        order.status = "FILLED"
        order.update_time = now
        self.open[order.symbol].pop(order.order_id, None)
        self._order_event(order, "TRADE", now, fill)
        self._balances_changed(order.account, now, got_asset, paid_asset)

    def _finish(self, order: Order, status: str, now: int, cancel_id: str = "") -> None:
        rules = self.rules[order.symbol]
        asset = rules.quote_asset if order.side == "BUY" else rules.base_asset
        if order.locked:
            self.accounts[order.account].unlock(asset, order.locked)
            order.locked = ZERO
        order.status = status
        order.update_time = now
        self.open[order.symbol].pop(order.order_id, None)
        self._order_event(
            order, status if status != "CANCELED" else "CANCELED", now, None, cancel_id
        )
        self._balances_changed(order.account, now, asset)

    # --- queries and cancels ----------------------------------------------------------------

    def find(self, account: str, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        """GET /api/v3/order semantics (§3.8): by orderId, then the client id must agree."""
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None or order.account != account or order.symbol != symbol:
                raise NO_SUCH_ORDER
            if client_id is not None and order.client_order_id != client_id:
                raise ApiError(-2039, "Client order ID is not correct for this order ID.")
            return order
        # The newest order with that client id (an id is reusable once the old order is done).
        for order in reversed(self.history):
            if (
                order.client_order_id == client_id
                and order.account == account
                and order.symbol == symbol
            ):
                return order
        raise NO_SUCH_ORDER

    def cancel(
        self,
        account: str,
        symbol: str,
        order_id: int | None,
        client_id: str | None,
        now: int,
        cancel_id: str = "",
    ) -> Order:
        try:
            order = self.find(account, symbol, order_id, client_id)
        except ApiError as exc:
            if exc.code == -2013:
                raise UNKNOWN_ORDER from None
            raise
        if not order.is_open:
            raise UNKNOWN_ORDER
        self._finish(order, "CANCELED", now, cancel_id or new_client_id())
        return order

    def open_orders(self, account: str, symbol: str | None) -> list[Order]:
        symbols: Iterable[str] = [symbol] if symbol else self.open.keys()
        found = [o for s in symbols for o in self.open[s].values() if o.account == account]
        return sorted(found, key=lambda o: o.order_id)

    # --- the market moves -----------------------------------------------------------------

    def on_prices(
        self,
        symbol: str,
        first_second: int,
        prices: Sequence[Decimal] | None,
        lookup: object = None,
    ) -> None:
        """Match resting orders of ``symbol`` against the prices of consecutive seconds
        starting at ``first_second`` (each second's trades happen at its start)."""
        if not prices or not self.open.get(symbol):
            return
        for order in list(self.open[symbol].values()):
            for i, price in enumerate(prices):
                now = (first_second + i) * 1000
                if order.is_stop and not order.is_working:
                    if _triggered(order.type, order.side, order.stop_price, price):
                        order.working_time = now
                        order.update_time = now
                        # Triggered: it is now a limit order and may take at once.
                        if _crosses(order, price):
                            self._fill(order, price, now, is_maker=False)
                            break
                    continue
                if _crosses(order, price):
                    self._fill(order, order.price, now, is_maker=True)
                    break


def _crosses(order: Order, price: Decimal) -> bool:
    return price <= order.price if order.side == "BUY" else price >= order.price


def _triggered(order_type: str, side: str, stop: Decimal, price: Decimal) -> bool:
    """Whether the last price reached a stop (§3.6 trigger direction)."""
    if order_type == "STOP_LOSS_LIMIT":
        return price >= stop if side == "BUY" else price <= stop
    return price <= stop if side == "BUY" else price >= stop
