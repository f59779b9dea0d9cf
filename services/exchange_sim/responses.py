"""Orders, trades, accounts and user-data events as the venue's own Structs.

Owns the conversion from the book's records to ``shared.binance.schemas`` payloads
(reference §3.6-3.12, §3.14), so the simulator and every client decode the same
shapes.
"""

from __future__ import annotations

from decimal import Decimal

from services.exchange_sim.book import COMMISSION, Account, Fill, Order, UserEvent, d8
from shared.binance.schemas import (
    Account as AccountPayload,
)
from shared.binance.schemas import (
    AccountPositionBalance,
    Balance,
    CancelOrder,
    CommissionRates,
    ExecutionReportEvent,
    MyTrade,
    OrderAck,
    OrderFill,
    OrderFull,
    OrderResult,
    OutboundAccountPositionEvent,
    QueryOrder,
)

_BPS = int(COMMISSION * 10_000)


def _orig_quote(order: Order) -> str:
    return d8(order.quote_order_qty)


def order_response(order: Order, resp_type: str, now: int) -> OrderAck | OrderResult | OrderFull:
    """``POST /api/v3/order`` answer of type ACK, RESULT or FULL (§3.6)."""
    if resp_type == "ACK":
        return OrderAck(
            symbol=order.symbol,
            orderId=order.order_id,
            clientOrderId=order.client_order_id,
            transactTime=now,
        )
    common = dict(
        symbol=order.symbol,
        orderId=order.order_id,
        clientOrderId=order.client_order_id,
        transactTime=now,
        price=d8(order.price),
        origQty=d8(order.qty),
        executedQty=d8(order.executed_qty),
        origQuoteOrderQty=_orig_quote(order),
        cummulativeQuoteQty=d8(order.cum_quote),
        status=order.status,
        timeInForce=order.time_in_force,
        type=order.type,
        side=order.side,
        workingTime=order.working_time,
    )
    if order.is_stop:
        common["stopPrice"] = d8(order.stop_price)
    if order.expiry_reason:
        common["expiryReason"] = order.expiry_reason
    if resp_type == "RESULT":
        return OrderResult(**common)  # type: ignore[arg-type]
    fills = [
        OrderFill(
            price=d8(f.price),
            qty=d8(f.qty),
            commission=d8(f.commission),
            commissionAsset=f.commission_asset,
            tradeId=f.trade_id,
        )
        for f in order.fills
    ]
    return OrderFull(**common, fills=fills)  # type: ignore[arg-type]


def query_order(order: Order) -> QueryOrder:
    """``GET /api/v3/order`` / ``openOrders`` row (§3.8)."""
    return QueryOrder(
        symbol=order.symbol,
        orderId=order.order_id,
        clientOrderId=order.client_order_id,
        price=d8(order.price),
        origQty=d8(order.qty),
        executedQty=d8(order.executed_qty),
        cummulativeQuoteQty=d8(order.cum_quote),
        status=order.status,
        timeInForce=order.time_in_force,
        type=order.type,
        side=order.side,
        stopPrice=d8(order.stop_price),
        time=order.time,
        updateTime=order.update_time,
        isWorking=order.is_working,
        workingTime=order.working_time,
        origQuoteOrderQty=_orig_quote(order),
    )


def cancel_order(order: Order, cancel_id: str, now: int) -> CancelOrder:
    """``DELETE /api/v3/order`` answer (§3.9)."""
    return CancelOrder(
        symbol=order.symbol,
        origClientOrderId=order.client_order_id,
        orderId=order.order_id,
        clientOrderId=cancel_id,
        transactTime=now,
        price=d8(order.price),
        origQty=d8(order.qty),
        executedQty=d8(order.executed_qty),
        origQuoteOrderQty=_orig_quote(order),
        cummulativeQuoteQty=d8(order.cum_quote),
        status=order.status,
        timeInForce=order.time_in_force,
        type=order.type,
        side=order.side,
    )


def my_trade(fill: Fill) -> MyTrade:
    return MyTrade(
        symbol=fill.symbol,
        id=fill.trade_id,
        orderId=fill.order_id,
        price=d8(fill.price),
        qty=d8(fill.qty),
        quoteQty=d8(fill.price * fill.qty),
        commission=d8(fill.commission),
        commissionAsset=fill.commission_asset,
        time=fill.time,
        isBuyer=fill.is_buyer,
        isMaker=fill.is_maker,
        isBestMatch=True,
    )


def account_payload(account: Account, omit_zero: bool = False) -> AccountPayload:
    rate = d8(COMMISSION)
    balances = [
        Balance(asset=asset, free=d8(free), locked=d8(locked))
        for asset, (free, locked) in sorted(account.balances.items())
        if not (omit_zero and free == 0 and locked == 0)
    ]
    return AccountPayload(
        makerCommission=_BPS,
        takerCommission=_BPS,
        commissionRates=CommissionRates(
            maker=rate, taker=rate, buyer="0.00000000", seller="0.00000000"
        ),
        canTrade=True,
        updateTime=account.update_time,
        balances=balances,
        uid=1,
    )


def execution_report(ev: UserEvent, exec_id: int) -> ExecutionReportEvent:
    """``executionReport`` for an order event (§3.14)."""
    order = ev.order
    assert order is not None
    fill = ev.fill
    last_qty = fill.qty if fill else Decimal(0)
    last_price = fill.price if fill else Decimal(0)
    is_cancel = ev.exec_type == "CANCELED"
    return ExecutionReportEvent(
        E=ev.time,
        s=order.symbol,
        c=ev.cancel_client_id if is_cancel else order.client_order_id,
        S=order.side,
        o=order.type,
        f=order.time_in_force,
        q=d8(order.qty),
        p=d8(order.price),
        P=d8(order.stop_price),
        F="0.00000000",
        g=-1,
        C=order.client_order_id if is_cancel else "",
        x=ev.exec_type,
        X=order.status if ev.exec_type != "NEW" else "NEW",
        r="NONE",
        i=order.order_id,
        l=d8(last_qty),
        z=d8(order.executed_qty) if ev.exec_type != "NEW" else "0.00000000",
        L=d8(last_price),
        n=d8(fill.commission) if fill else "0",
        N=fill.commission_asset if fill else None,
        T=ev.time,
        t=fill.trade_id if fill else -1,
        I=exec_id,
        w=order.is_open and order.is_working,
        m=fill.is_maker if fill else False,
        O=order.time,
        Z=d8(order.cum_quote) if ev.exec_type != "NEW" else "0.00000000",
        Y=d8(last_qty * last_price),
        Q=d8(order.quote_order_qty),
        W=order.working_time if order.working_time >= 0 else msgspec_unset(),
    )


def msgspec_unset():  # type: ignore[no-untyped-def]
    import msgspec

    return msgspec.UNSET


def account_position(ev: UserEvent, account: Account) -> OutboundAccountPositionEvent:
    return OutboundAccountPositionEvent(
        E=ev.time,
        u=account.update_time,
        B=[
            AccountPositionBalance(
                a=asset,
                f=d8(account.balances.get(asset, [Decimal(0), Decimal(0)])[0]),
                l=d8(account.balances.get(asset, [Decimal(0), Decimal(0)])[1]),
            )
            for asset in ev.assets
        ],
    )
