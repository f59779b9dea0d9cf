"""A symbol's trading rules: the stateless exchange filters, rounding and wire formats.

Owns: :class:`SymbolRules` (what ingestion stores in the ``exchange:symbols`` hash as
JSON, what the gateway checks an order against, what the simulator enforces and
serves as exchangeInfo), the rounding helpers, :func:`validate_order` and the
conversion between rules and the venue's exchangeInfo symbol entry.

Filters follow reference §5 (Binance ``filters.md``): a field equal to 0 disables its
rule; arithmetic is exact ``Decimal``. Only the stateless filters are checked here
(PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL, NOTIONAL); order-count
filters such as MAX_NUM_ORDERS need the book and are the simulator's (``-2010``).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Literal

import msgspec

from shared.binance.schemas import Filter, SymbolInfo
from shared.messages import OrderType, Side

ZERO = Decimal(0)
# Precision for exact quotient/remainder work: far beyond any price/step Binance uses.
_PREC = 60
# Binance serves filter numbers with 8 decimals ("0.00100000", §11).
WIRE_DECIMALS = 8


class SymbolRules(msgspec.Struct, frozen=True, kw_only=True):
    """Trading rules of one symbol, flattened from its exchangeInfo entry (§3.3, §5).

    A zero filter field means "no such rule", as on the venue. ``notional_filter``
    names the notional filter the symbol has: ``"NOTIONAL"`` (current),
    ``"MIN_NOTIONAL"`` (legacy; its ``applyToMarket`` is ``apply_min_to_market``) or
    ``""`` (none); only NOTIONAL has a maximum.
    """

    symbol: str
    status: str = "TRADING"  # TRADING | END_OF_DAY | HALT | BREAK | CANCEL_ONLY
    base_asset: str
    quote_asset: str
    base_precision: int = 8  # baseAssetPrecision: decimals allowed in quantities
    quote_precision: int = 8  # quoteAssetPrecision: decimals allowed in prices / quote amounts
    order_types: tuple[str, ...] = ("LIMIT", "MARKET")
    quote_order_qty_market_allowed: bool = True
    is_spot_trading_allowed: bool = True
    # PRICE_FILTER
    tick_size: Decimal = ZERO
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO
    # LOT_SIZE
    step_size: Decimal = ZERO
    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    # MARKET_LOT_SIZE
    market_step_size: Decimal = ZERO
    market_min_qty: Decimal = ZERO
    market_max_qty: Decimal = ZERO
    # NOTIONAL (or legacy MIN_NOTIONAL)
    notional_filter: str = "NOTIONAL"
    min_notional: Decimal = ZERO
    max_notional: Decimal = ZERO
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    avg_price_mins: int = 5
    # order-count filters (0 = none); enforced by whoever holds the book
    max_num_orders: int = 0
    max_num_algo_orders: int = 0
    default_stp_mode: str = "NONE"
    allowed_stp_modes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Keep the notional fields consistent with the filter they came from, so that
        # exchangeInfo -> rules -> exchangeInfo loses nothing (raised as a
        # ValidationError when decoding a bad ``exchange:symbols`` value).
        if self.notional_filter not in ("NOTIONAL", "MIN_NOTIONAL", ""):
            raise ValueError(f"unknown notional filter {self.notional_filter!r}")
        if self.notional_filter != "NOTIONAL" and (self.max_notional or self.apply_max_to_market):
            raise ValueError(f"{self.notional_filter or 'no notional filter'} has no maximum")
        if not self.notional_filter:
            if self.min_notional:
                raise ValueError("min_notional set without a notional filter")
            # Without a notional filter its flags mean nothing: pin them to the defaults
            # so that equal rules compare equal after a round trip.
            msgspec.structs.force_setattr(self, "apply_min_to_market", True)
            msgspec.structs.force_setattr(self, "avg_price_mins", 5)

    @property
    def is_trading(self) -> bool:
        return self.status == "TRADING"


# --- the exchange:symbols hash (DESIGN "Redis contract") -----------------------------------

_rules_encoder = msgspec.json.Encoder(decimal_format="string")
_rules_decoder = msgspec.json.Decoder(SymbolRules)


def rules_to_json(rules: SymbolRules) -> bytes:
    """The value stored under ``rules.symbol`` in the ``exchange:symbols`` hash."""
    return _rules_encoder.encode(rules)


def rules_from_json(data: bytes | str) -> SymbolRules:
    """Decode a value of the ``exchange:symbols`` hash (raises ``msgspec.DecodeError``/``ValidationError``)."""
    return _rules_decoder.decode(data)


# --- rounding ------------------------------------------------------------------------------


def _quotient_remainder(value: Decimal, step: Decimal) -> tuple[Decimal, Decimal]:
    with localcontext() as ctx:
        ctx.prec = _PREC
        return divmod(value, step)


def round_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """Round a quantity DOWN (toward zero) onto the ``step`` grid; step 0 = no rounding.

    The result is never larger than ``qty`` (for qty >= 0) and carries the step's
    exponent, e.g. ``round_to_step(Decimal("1.23456"), Decimal("0.00100000"))`` is
    ``Decimal("1.23400000")``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step == 0:
        return qty
    quotient, _ = _quotient_remainder(qty, step)
    with localcontext() as ctx:
        ctx.prec = _PREC
        return quotient * step


def round_price_to_tick(
    price: Decimal, tick: Decimal, direction: Literal["down", "up", "nearest"] = "down"
) -> Decimal:
    """Round a price (>= 0) onto the ``tick`` grid; tick 0 = no rounding.

    ``down`` suits a BUY limit (never pay more), ``up`` a SELL limit (never sell for
    less), ``nearest`` rounds half up.
    """
    if direction not in ("down", "up", "nearest"):
        raise ValueError(f"unknown rounding direction {direction!r}")
    if tick < 0:
        raise ValueError(f"tick must be >= 0, got {tick}")
    if price < 0:
        raise ValueError(f"price must be >= 0, got {price}")
    if tick == 0:
        return price
    quotient, remainder = _quotient_remainder(price, tick)
    if remainder and (direction == "up" or (direction == "nearest" and 2 * remainder >= tick)):
        quotient += 1
    with localcontext() as ctx:
        ctx.prec = _PREC
        return quotient * tick


def _on_grid(value: Decimal, step: Decimal) -> bool:
    return step == 0 or _quotient_remainder(value, step)[1] == 0


# --- validation (§5) -------------------------------------------------------------------------


class OrderCheckError(ValueError):
    """An order the venue would refuse with ``-1013`` before the matching engine.

    ``code`` and ``msg`` are exactly what Binance answers, so the simulator can send
    ``{"code": e.code, "msg": e.msg}`` and the gateway can report it.
    """

    code = -1013

    def __init__(self, msg: str, detail: str = "") -> None:
        super().__init__(f"{msg} ({detail})" if detail else msg)
        self.msg = msg
        self.detail = detail


class FilterFailure(OrderCheckError):
    """``-1013 "Filter failure: <FILTER>"`` (§5); ``filter_name`` is the filter type."""

    def __init__(self, filter_name: str, detail: str = "") -> None:
        super().__init__(f"Filter failure: {filter_name}", detail)
        self.filter_name = filter_name


class InvalidOrderValue(OrderCheckError):
    """A non-positive quantity or price: ``-1013 "Invalid quantity."`` / ``"Invalid price."``."""


def _check_lot(name: str, qty: Decimal, lo: Decimal, hi: Decimal, step: Decimal) -> None:
    if lo and qty < lo:
        raise FilterFailure(name, f"quantity {qty} < minQty {lo}")
    if hi and qty > hi:
        raise FilterFailure(name, f"quantity {qty} > maxQty {hi}")
    if not _on_grid(qty, step):
        raise FilterFailure(name, f"quantity {qty} not a multiple of stepSize {step}")


def validate_order(
    rules: SymbolRules,
    side: Side | str,
    order_type: OrderType | str,
    quantity: Decimal | None,
    price: Decimal | None = None,
    reference_price: Decimal | None = None,
    *,
    quote_quantity: Decimal | None = None,
) -> None:
    """Raise :class:`FilterFailure` naming the first stateless filter the order breaks.

    Checks, in this order: PRICE_FILTER on ``price`` (non-MARKET orders), LOT_SIZE on
    ``quantity``, MARKET_LOT_SIZE on a MARKET ``quantity``, then the symbol's
    NOTIONAL / MIN_NOTIONAL. A priced order's notional is ``price * quantity``; a MARKET
    order's is ``reference_price * quantity`` (the venue's average/reference price,
    §5), or ``quote_quantity`` for a quote-amount MARKET order, and its min/max bound
    applies only if ``apply_min_to_market`` / ``apply_max_to_market``.
    ``side`` is accepted for the side-dependent filters (PERCENT_PRICE_BY_SIDE), not
    yet checked. The venue's order of evaluation is undocumented [UNVERIFIED].
    """
    del side  # not used by the filters checked here
    is_market = str(order_type) == OrderType.MARKET
    if quantity is None and not (is_market and quote_quantity is not None):
        raise ValueError("quantity is required (or quote_quantity for a MARKET order)")
    if quantity is not None and quantity <= 0:
        raise InvalidOrderValue("Invalid quantity.", f"quantity {quantity}")
    if quote_quantity is not None and quote_quantity <= 0:
        raise InvalidOrderValue("Invalid quantity.", f"quoteOrderQty {quote_quantity}")

    if not is_market:
        if price is None:
            raise ValueError(f"price is required for a {order_type} order")
        if price <= 0:
            raise InvalidOrderValue("Invalid price.", f"price {price}")
        if rules.min_price and price < rules.min_price:
            raise FilterFailure("PRICE_FILTER", f"price {price} < minPrice {rules.min_price}")
        if rules.max_price and price > rules.max_price:
            raise FilterFailure("PRICE_FILTER", f"price {price} > maxPrice {rules.max_price}")
        if not _on_grid(price, rules.tick_size):
            raise FilterFailure(
                "PRICE_FILTER", f"price {price} not a multiple of tickSize {rules.tick_size}"
            )

    if quantity is not None:
        _check_lot("LOT_SIZE", quantity, rules.min_qty, rules.max_qty, rules.step_size)
        if is_market:
            _check_lot(
                "MARKET_LOT_SIZE",
                quantity,
                rules.market_min_qty,
                rules.market_max_qty,
                rules.market_step_size,
            )

    if not rules.notional_filter:
        return
    check_min = rules.min_notional > 0 and (not is_market or rules.apply_min_to_market)
    check_max = rules.max_notional > 0 and (not is_market or rules.apply_max_to_market)
    if not (check_min or check_max):
        return
    if not is_market:
        assert price is not None and quantity is not None
        notional = price * quantity
    elif quote_quantity is not None:
        notional = quote_quantity
    else:
        if reference_price is None:
            raise ValueError(f"reference_price is required to check {rules.notional_filter}")
        assert quantity is not None
        notional = reference_price * quantity
    if check_min and notional < rules.min_notional:
        raise FilterFailure(
            rules.notional_filter, f"notional {notional} < minNotional {rules.min_notional}"
        )
    if check_max and notional > rules.max_notional:
        raise FilterFailure(
            rules.notional_filter, f"notional {notional} > maxNotional {rules.max_notional}"
        )


# --- wire formats ----------------------------------------------------------------------------


def format_decimal(value: Decimal, decimals: int, *, rounding: str | None = None) -> str:
    """``value`` as a plain decimal string with exactly ``decimals`` places ("0.00100000").

    Without ``rounding`` the value must fit exactly (a ``ValueError`` otherwise: the
    venue answers ``-1111`` "too much precision"); with a ``decimal`` rounding mode
    (e.g. ``ROUND_DOWN``) it is rounded. Never an exponent.
    """
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    exp = Decimal(1).scaleb(-decimals)
    with localcontext() as ctx:
        ctx.prec = _PREC
        quantized = value.quantize(exp, rounding=rounding or ROUND_DOWN)
    if rounding is None and quantized != value:
        raise ValueError(f"{value} has more than {decimals} decimals")
    return format(quantized, "f")


def format_quantity(rules: SymbolRules, quantity: Decimal) -> str:
    """A base-asset quantity for the wire, at the symbol's base precision."""
    return format_decimal(quantity, rules.base_precision)


def format_price(rules: SymbolRules, price: Decimal) -> str:
    """A price or quote amount for the wire, at the symbol's quote precision."""
    return format_decimal(price, rules.quote_precision)


def _wire(value: Decimal) -> str:
    """A filter number as Binance serves it: 8 decimals, more only if needed."""
    exponent = value.as_tuple().exponent
    decimals = max(WIRE_DECIMALS, -exponent) if isinstance(exponent, int) else WIRE_DECIMALS
    return format_decimal(value, decimals)


# --- exchangeInfo <-> rules (§3.3) -------------------------------------------------------------


def _dec(value: str | msgspec.UnsetType) -> Decimal:
    return ZERO if value is msgspec.UNSET else Decimal(value)


def rules_from_symbol_info(info: SymbolInfo) -> SymbolRules:
    """Flatten one exchangeInfo symbol entry; filters it lacks are disabled (zero)."""
    fields: dict[str, object] = {}
    for f in info.filters:
        if f.filterType == "PRICE_FILTER":
            fields.update(
                tick_size=_dec(f.tickSize), min_price=_dec(f.minPrice), max_price=_dec(f.maxPrice)
            )
        elif f.filterType == "LOT_SIZE":
            fields.update(
                step_size=_dec(f.stepSize), min_qty=_dec(f.minQty), max_qty=_dec(f.maxQty)
            )
        elif f.filterType == "MARKET_LOT_SIZE":
            fields.update(
                market_step_size=_dec(f.stepSize),
                market_min_qty=_dec(f.minQty),
                market_max_qty=_dec(f.maxQty),
            )
        elif f.filterType == "NOTIONAL":
            fields.update(
                notional_filter="NOTIONAL",
                min_notional=_dec(f.minNotional),
                max_notional=_dec(f.maxNotional),
                apply_min_to_market=f.applyMinToMarket is True,
                apply_max_to_market=f.applyMaxToMarket is True,
            )
            if isinstance(f.avgPriceMins, int):
                fields["avg_price_mins"] = f.avgPriceMins
        elif f.filterType == "MIN_NOTIONAL" and fields.get("notional_filter") != "NOTIONAL":
            fields.update(
                notional_filter="MIN_NOTIONAL",
                min_notional=_dec(f.minNotional),
                max_notional=ZERO,
                apply_min_to_market=f.applyToMarket is True,
                apply_max_to_market=False,
            )
            if isinstance(f.avgPriceMins, int):
                fields["avg_price_mins"] = f.avgPriceMins
        elif f.filterType == "MAX_NUM_ORDERS" and isinstance(f.maxNumOrders, int):
            fields["max_num_orders"] = f.maxNumOrders
        elif f.filterType == "MAX_NUM_ALGO_ORDERS" and isinstance(f.maxNumAlgoOrders, int):
            fields["max_num_algo_orders"] = f.maxNumAlgoOrders
    if "notional_filter" not in fields:
        fields["notional_filter"] = ""
    return SymbolRules(
        symbol=info.symbol,
        status=info.status,
        base_asset=info.baseAsset,
        quote_asset=info.quoteAsset,
        base_precision=info.baseAssetPrecision,
        quote_precision=info.quoteAssetPrecision,
        order_types=tuple(info.orderTypes),
        quote_order_qty_market_allowed=info.quoteOrderQtyMarketAllowed,
        is_spot_trading_allowed=info.isSpotTradingAllowed,
        default_stp_mode=info.defaultSelfTradePreventionMode,
        allowed_stp_modes=tuple(info.allowedSelfTradePreventionModes),
        **fields,  # type: ignore[arg-type]
    )


def symbol_info_from_rules(rules: SymbolRules) -> SymbolInfo:
    """The exchangeInfo symbol entry the simulator serves for ``rules``.

    ``rules_from_symbol_info(symbol_info_from_rules(r)) == r`` for every ``r``.
    """
    filters = [
        Filter(
            filterType="PRICE_FILTER",
            minPrice=_wire(rules.min_price),
            maxPrice=_wire(rules.max_price),
            tickSize=_wire(rules.tick_size),
        ),
        Filter(
            filterType="LOT_SIZE",
            minQty=_wire(rules.min_qty),
            maxQty=_wire(rules.max_qty),
            stepSize=_wire(rules.step_size),
        ),
        Filter(
            filterType="MARKET_LOT_SIZE",
            minQty=_wire(rules.market_min_qty),
            maxQty=_wire(rules.market_max_qty),
            stepSize=_wire(rules.market_step_size),
        ),
    ]
    if rules.notional_filter == "NOTIONAL":
        filters.append(
            Filter(
                filterType="NOTIONAL",
                minNotional=_wire(rules.min_notional),
                applyMinToMarket=rules.apply_min_to_market,
                maxNotional=_wire(rules.max_notional),
                applyMaxToMarket=rules.apply_max_to_market,
                avgPriceMins=rules.avg_price_mins,
            )
        )
    elif rules.notional_filter == "MIN_NOTIONAL":
        filters.append(
            Filter(
                filterType="MIN_NOTIONAL",
                minNotional=_wire(rules.min_notional),
                applyToMarket=rules.apply_min_to_market,
                avgPriceMins=rules.avg_price_mins,
            )
        )
    if rules.max_num_orders:
        filters.append(Filter(filterType="MAX_NUM_ORDERS", maxNumOrders=rules.max_num_orders))
    if rules.max_num_algo_orders:
        filters.append(
            Filter(filterType="MAX_NUM_ALGO_ORDERS", maxNumAlgoOrders=rules.max_num_algo_orders)
        )
    return SymbolInfo(
        symbol=rules.symbol,
        status=rules.status,
        baseAsset=rules.base_asset,
        baseAssetPrecision=rules.base_precision,
        quoteAsset=rules.quote_asset,
        quotePrecision=rules.quote_precision,
        quoteAssetPrecision=rules.quote_precision,
        baseCommissionPrecision=rules.base_precision,
        quoteCommissionPrecision=rules.quote_precision,
        orderTypes=list(rules.order_types),
        quoteOrderQtyMarketAllowed=rules.quote_order_qty_market_allowed,
        isSpotTradingAllowed=rules.is_spot_trading_allowed,
        filters=filters,
        permissions=[],
        permissionSets=[["SPOT"]],
        defaultSelfTradePreventionMode=rules.default_stp_mode,
        allowedSelfTradePreventionModes=list(rules.allowed_stp_modes),
    )


def exchange_info_symbol(rules: SymbolRules) -> dict[str, object]:
    """:func:`symbol_info_from_rules` as a JSON-ready dict (the simulator's response)."""
    result: dict[str, object] = msgspec.to_builtins(symbol_info_from_rules(rules))
    return result
