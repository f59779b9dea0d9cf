"""The venue's own JSON shapes, as msgspec Structs named after Binance's keys.

Owns: every payload botfleet reads from or writes as Binance (market-stream
events, control replies, REST responses, user-data events). Prices and quantities
stay ``str`` here exactly as the venue sends them; they become ``Decimal`` only in
:mod:`shared.binance.parsing` / :mod:`shared.binance.rules`, and these Structs never
travel past the parsing step. The simulator encodes the same Structs to serve them,
so client and simulator cannot disagree on a key.

Events tagged on ``"e"`` carry their tag implicitly (``KlineEvent`` encodes
``"e":"kline"``). Optional, conditional venue fields default to ``UNSET`` and are
omitted on encoding. Section numbers cite
/work/shared/reference/binance-spot-api.md.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


class _Venue(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every venue Struct: immutable and keyword-built. ``kw_only`` is not
    inherited (and mypy wants ``frozen`` restated), so every subclass repeats both.

    Conditional venue fields are ``UNSET`` when absent, so encoding omits them.
    """


# --- market streams (§2) ---------------------------------------------------------------


class Kline(_Venue, frozen=True, kw_only=True):
    """The ``k`` object of a kline event (§2.3)."""

    t: int  # kline open (start) time, epoch ms
    T: int  # kline close time = t + interval - 1 ms
    s: str  # symbol
    i: str  # interval
    f: int  # first trade id (-1 when no trade [UNVERIFIED])
    L: int  # last trade id
    o: str  # open price
    c: str  # close price
    h: str  # high price
    l: str  # noqa: E741 -- low price
    v: str  # base asset volume
    n: int  # number of trades
    x: bool  # is this kline closed?
    q: str  # quote asset volume
    V: str  # taker buy base asset volume
    Q: str  # taker buy quote asset volume
    B: str = "0"  # ignore


class KlineEvent(_Venue, frozen=True, kw_only=True, tag_field="e", tag="kline"):
    """``<symbol>@kline_<interval>`` event (§2.3, verbatim example in §11)."""

    E: int  # event time, epoch ms
    s: str  # symbol
    k: Kline  # the kline


class MiniTickerEvent(_Venue, frozen=True, kw_only=True, tag_field="e", tag="24hrMiniTicker"):
    """``<symbol>@miniTicker`` event; ``!miniTicker@arr`` is a JSON array of them (§2.4)."""

    E: int  # event time, epoch ms
    s: str  # symbol
    c: str  # close (last) price
    o: str  # open price (24 h rolling window)
    h: str  # high price
    l: str  # noqa: E741 -- low price
    v: str  # total traded base asset volume
    q: str  # total traded quote asset volume


class ServerShutdownEvent(_Venue, frozen=True, kw_only=True, tag_field="e", tag="serverShutdown"):
    """The server is about to go down: reconnect now (§2.1, 2026-05)."""

    E: int  # event time, epoch ms


class CombinedFrame(_Venue, frozen=True, kw_only=True):
    """``/stream?streams=...`` wrapper: ``{"stream": <name>, "data": <raw payload>}`` (§1)."""

    stream: str
    data: Any


# --- live control messages (§2.2) ---------------------------------------------------------


class WsRequest(_Venue, frozen=True, kw_only=True):
    """``{"method":"SUBSCRIBE","params":[...],"id":1}`` and the other control requests."""

    method: str  # SUBSCRIBE | UNSUBSCRIBE | LIST_SUBSCRIPTIONS | SET_PROPERTY | GET_PROPERTY
    params: list[Any] | UnsetType = UNSET
    id: int | str | None = None


class WsReply(_Venue, frozen=True, kw_only=True):
    """Success reply ``{"result": null, "id": 1}`` (a list for LIST_SUBSCRIPTIONS)."""

    result: Any
    id: int | str | None
    status: int | UnsetType = UNSET  # WS-API replies only (HTTP-like status, §6)


class ErrorBody(_Venue, frozen=True, kw_only=True):
    """Binance error ``{"code": -1121, "msg": "Invalid symbol."}`` (§6).

    ``data`` appears on WS-API rate-limit errors (``serverTime``, ``retryAfter``).
    """

    code: int
    msg: str
    data: dict[str, Any] | UnsetType = UNSET


class WsErrorReply(_Venue, frozen=True, kw_only=True):
    """Error reply to a control message: ``{"error":{"code":2,"msg":"..."},"id":2}`` (§2.2)."""

    error: ErrorBody
    id: int | str | None
    status: int | UnsetType = UNSET  # WS-API replies only: 400, 418, 429... (§6)


# --- REST market data (§3.1-3.5) -----------------------------------------------------------


class ServerTime(_Venue, frozen=True, kw_only=True):
    serverTime: int  # epoch ms


class TickerPrice(_Venue, frozen=True, kw_only=True):
    symbol: str
    price: str


class RestKline(msgspec.Struct, frozen=True, array_like=True):
    """One row of ``GET /api/v3/klines``: a 12-element JSON array (§3.4)."""

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time: int
    quote_volume: str
    trades: int
    taker_buy_base_volume: str
    taker_buy_quote_volume: str
    ignore: str = "0"


class RateLimit(_Venue, frozen=True, kw_only=True):
    """``exchangeInfo.rateLimits[]`` entry (§7); ``count`` only in WS-API replies."""

    rateLimitType: str  # REQUEST_WEIGHT | ORDERS | RAW_REQUESTS | CONNECTIONS
    interval: str  # SECOND | MINUTE | HOUR | DAY
    intervalNum: int
    limit: int
    count: int | UnsetType = UNSET


class Filter(_Venue, frozen=True, kw_only=True):
    """One symbol or exchange filter (§5).

    A generic Struct rather than a tagged union, so a filter type Binance adds later
    decodes (its unknown fields are dropped) instead of failing the whole exchangeInfo.
    Which fields are set depends on ``filterType``.
    """

    filterType: str
    # PRICE_FILTER
    minPrice: str | UnsetType = UNSET
    maxPrice: str | UnsetType = UNSET
    tickSize: str | UnsetType = UNSET
    # PERCENT_PRICE
    multiplierUp: str | UnsetType = UNSET
    multiplierDown: str | UnsetType = UNSET
    # PERCENT_PRICE_BY_SIDE
    bidMultiplierUp: str | UnsetType = UNSET
    bidMultiplierDown: str | UnsetType = UNSET
    askMultiplierUp: str | UnsetType = UNSET
    askMultiplierDown: str | UnsetType = UNSET
    # LOT_SIZE, MARKET_LOT_SIZE
    minQty: str | UnsetType = UNSET
    maxQty: str | UnsetType = UNSET
    stepSize: str | UnsetType = UNSET
    # MIN_NOTIONAL (legacy: applyToMarket), NOTIONAL
    minNotional: str | UnsetType = UNSET
    applyToMarket: bool | UnsetType = UNSET
    applyMinToMarket: bool | UnsetType = UNSET
    maxNotional: str | UnsetType = UNSET
    applyMaxToMarket: bool | UnsetType = UNSET
    avgPriceMins: int | UnsetType = UNSET
    # ICEBERG_PARTS
    limit: int | UnsetType = UNSET
    # MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS, MAX_NUM_ICEBERG_ORDERS, MAX_NUM_ORDER_LISTS, ...
    maxNumOrders: int | UnsetType = UNSET
    maxNumAlgoOrders: int | UnsetType = UNSET
    maxNumIcebergOrders: int | UnsetType = UNSET
    maxNumOrderLists: int | UnsetType = UNSET
    maxNumOrderAmends: int | UnsetType = UNSET
    # MAX_POSITION
    maxPosition: str | UnsetType = UNSET
    # TRAILING_DELTA
    minTrailingAboveDelta: int | UnsetType = UNSET
    maxTrailingAboveDelta: int | UnsetType = UNSET
    minTrailingBelowDelta: int | UnsetType = UNSET
    maxTrailingBelowDelta: int | UnsetType = UNSET


class SymbolInfo(_Venue, frozen=True, kw_only=True):
    """``exchangeInfo.symbols[]`` entry (§3.3, verbatim BNBBTC example in §11)."""

    symbol: str
    status: str  # TRADING | END_OF_DAY | HALT | BREAK | CANCEL_ONLY
    baseAsset: str
    baseAssetPrecision: int
    quoteAsset: str
    quotePrecision: int  # legacy, same as quoteAssetPrecision
    quoteAssetPrecision: int
    baseCommissionPrecision: int = 8
    quoteCommissionPrecision: int = 8
    orderTypes: list[str] = msgspec.field(default_factory=list)
    icebergAllowed: bool = False
    ocoAllowed: bool = False
    otoAllowed: bool = False
    opoAllowed: bool = False
    quoteOrderQtyMarketAllowed: bool = False
    allowTrailingStop: bool = False
    cancelReplaceAllowed: bool = False
    amendAllowed: bool = False
    pegInstructionsAllowed: bool = False
    isSpotTradingAllowed: bool = True
    isMarginTradingAllowed: bool = False
    filters: list[Filter] = msgspec.field(default_factory=list)
    permissions: list[str] = msgspec.field(default_factory=list)
    permissionSets: list[list[str]] = msgspec.field(default_factory=list)
    defaultSelfTradePreventionMode: str = "NONE"
    allowedSelfTradePreventionModes: list[str] = msgspec.field(default_factory=list)


class ExchangeInfo(_Venue, frozen=True, kw_only=True):
    """``GET /api/v3/exchangeInfo`` (§3.3)."""

    timezone: str = "UTC"
    serverTime: int = 0
    rateLimits: list[RateLimit] = msgspec.field(default_factory=list)
    exchangeFilters: list[Filter] = msgspec.field(default_factory=list)
    symbols: list[SymbolInfo] = msgspec.field(default_factory=list)


# --- orders (§3.6-3.10) -------------------------------------------------------------------


class OrderFill(_Venue, frozen=True, kw_only=True):
    """``fills[]`` entry of a FULL order response (§3.6)."""

    price: str
    qty: str
    commission: str
    commissionAsset: str
    tradeId: int


class OrderAck(_Venue, frozen=True, kw_only=True):
    """``POST /api/v3/order`` with ``newOrderRespType=ACK`` (§3.6)."""

    symbol: str
    orderId: int
    orderListId: int = -1  # -1 unless part of an order list
    clientOrderId: str
    transactTime: int


class OrderResult(OrderAck, frozen=True, kw_only=True):
    """``newOrderRespType=RESULT``: ACK plus the order's state (§3.6)."""

    price: str
    origQty: str
    executedQty: str
    origQuoteOrderQty: str = "0.00000000"
    cummulativeQuoteQty: str  # sic, Binance's spelling
    status: (
        str  # NEW | PARTIALLY_FILLED | FILLED | CANCELED | REJECTED | EXPIRED | EXPIRED_IN_MATCH
    )
    timeInForce: str
    type: str
    side: str
    workingTime: int = -1
    selfTradePreventionMode: str = "NONE"
    # conditional fields, present only when relevant
    stopPrice: str | UnsetType = UNSET
    icebergQty: str | UnsetType = UNSET
    preventedMatchId: int | UnsetType = UNSET
    preventedQuantity: str | UnsetType = UNSET
    trailingDelta: int | UnsetType = UNSET
    expiryReason: str | UnsetType = UNSET


class OrderFull(OrderResult, frozen=True, kw_only=True):
    """``newOrderRespType=FULL``: RESULT plus ``fills`` (empty for a resting order) (§3.6)."""

    fills: list[OrderFill]  # always present, [] when nothing filled


class QueryOrder(_Venue, frozen=True, kw_only=True):
    """``GET /api/v3/order`` and each row of ``GET /api/v3/openOrders`` (§3.8, §3.10)."""

    symbol: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    price: str
    origQty: str
    executedQty: str
    cummulativeQuoteQty: str  # may be < 0 for very old orders: unavailable
    status: str
    timeInForce: str
    type: str
    side: str
    stopPrice: str = "0.00000000"
    icebergQty: str = "0.00000000"
    time: int
    updateTime: int
    isWorking: bool
    workingTime: int = -1
    origQuoteOrderQty: str = "0.00000000"
    selfTradePreventionMode: str = "NONE"
    expiryReason: str | UnsetType = UNSET


class CancelOrder(_Venue, frozen=True, kw_only=True):
    """``DELETE /api/v3/order``: ``origClientOrderId`` is the order's id,
    ``clientOrderId`` the cancel request's own new id (§3.9)."""

    symbol: str
    origClientOrderId: str
    orderId: int
    orderListId: int = -1
    clientOrderId: str
    transactTime: int
    price: str
    origQty: str
    executedQty: str
    origQuoteOrderQty: str = "0.00000000"
    cummulativeQuoteQty: str
    status: str
    timeInForce: str
    type: str
    side: str
    selfTradePreventionMode: str = "NONE"


# --- account (§3.11-3.12) ------------------------------------------------------------------


class Balance(_Venue, frozen=True, kw_only=True):
    asset: str
    free: str
    locked: str


class CommissionRates(_Venue, frozen=True, kw_only=True):
    maker: str
    taker: str
    buyer: str
    seller: str


class Account(_Venue, frozen=True, kw_only=True):
    """``GET /api/v3/account`` (§3.11); commissions in basis points."""

    makerCommission: int = 0
    takerCommission: int = 0
    buyerCommission: int = 0
    sellerCommission: int = 0
    commissionRates: CommissionRates | UnsetType = UNSET
    canTrade: bool = True
    canWithdraw: bool = False
    canDeposit: bool = False
    brokered: bool = False
    requireSelfTradePrevention: bool = False
    preventSor: bool = False
    updateTime: int = 0
    accountType: str = "SPOT"
    balances: list[Balance] = msgspec.field(default_factory=list)
    permissions: list[str] = msgspec.field(default_factory=lambda: ["SPOT"])
    uid: int | UnsetType = UNSET


class MyTrade(_Venue, frozen=True, kw_only=True):
    """``GET /api/v3/myTrades`` row (§3.12)."""

    symbol: str
    id: int
    orderId: int
    orderListId: int = -1
    price: str
    qty: str
    quoteQty: str
    commission: str
    commissionAsset: str
    time: int
    isBuyer: bool
    isMaker: bool
    isBestMatch: bool


# --- user data events (§3.14) -----------------------------------------------------------------


class ExecutionReportEvent(_Venue, frozen=True, kw_only=True, tag_field="e", tag="executionReport"):
    """``executionReport``: one per order state change or trade (§3.14, example in §11)."""

    E: int  # event time
    s: str  # symbol
    c: str  # client order id (for a cancel: the cancel's new id)
    S: str  # side
    o: str  # order type
    f: str  # time in force
    q: str  # order quantity
    p: str  # order price
    P: str  # stop price
    F: str  # iceberg quantity
    g: int  # order list id (-1 if none)
    C: str  # original client order id of the order being canceled; "" otherwise
    x: str  # current execution type: NEW | CANCELED | REPLACED | REJECTED | TRADE | EXPIRED | TRADE_PREVENTION
    X: str  # current order status
    r: str  # order reject reason
    i: int  # order id
    l: str  # noqa: E741 -- last executed quantity
    z: str  # cumulative filled quantity
    L: str  # last executed price
    n: str  # commission amount
    N: str | None  # commission asset (null if none)
    T: int  # transaction time
    t: int  # trade id (-1 if no trade)
    v: int | UnsetType = UNSET  # prevented match id (only when expired by STP)
    I: int  # noqa: E741 -- execution id
    w: bool  # is the order on the book?
    m: bool  # is this trade the maker side?
    M: bool = False  # ignore
    O: int  # noqa: E741 -- order creation time
    Z: str  # cumulative quote asset transacted quantity
    Y: str  # last quote asset transacted quantity (last price * last qty)
    Q: str  # quote order quantity
    W: int | UnsetType = UNSET  # working time (only once on the book)
    V: str = "NONE"  # self-trade prevention mode
    eR: str | UnsetType = UNSET  # expiry reason (2026-03)


class AccountPositionBalance(_Venue, frozen=True, kw_only=True):
    a: str  # asset
    f: str  # free
    l: str  # noqa: E741 -- locked


class OutboundAccountPositionEvent(
    _Venue,
    frozen=True,
    kw_only=True,
    tag_field="e",
    tag="outboundAccountPosition",
):
    """Balances changed by an account event (§3.14)."""

    E: int  # event time
    u: int  # time of the last account update
    B: list[AccountPositionBalance]  # balances that changed


class BalanceUpdateEvent(_Venue, frozen=True, kw_only=True, tag_field="e", tag="balanceUpdate"):
    """Deposit, withdrawal or transfer (§3.14)."""

    E: int  # event time
    a: str  # asset
    d: str  # balance delta
    T: int  # clear time


class EventStreamTerminatedEvent(
    _Venue, frozen=True, kw_only=True, tag_field="e", tag="eventStreamTerminated"
):
    """The user-data subscription ended (logout, 2024-12); resubscribe (§3.14)."""

    E: int  # event time


class UserDataFrame(_Venue, frozen=True, kw_only=True):
    """WS-API user-data wrapper ``{"subscriptionId": 0, "event": {...}}`` (§3.14)."""

    subscriptionId: int
    event: Any
