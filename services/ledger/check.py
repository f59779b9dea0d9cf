"""``botfleet ledger check``: the ledger's fills against the exchange's own trades
(``GET /api/v3/myTrades``, reference §3.12) for a period, every difference printed.

The two sides are matched on the exchange's trade id (per symbol). A fill the ledger
dates inside the period and the exchange does not list there is looked up by its order
(``myTrades?orderId=``, weight 5) before it is called missing, and a trade the exchange
lists that the ledger lacks in the period is looked up in the whole ledger: the ledger
dates a fill by its report, the exchange by the match, and the two clocks differ a little
near the period's edges (and a lot with a sped-up simulator).

Kinds of difference: ``missing_in_ledger`` (the exchange traded, the ledger has no such
fill), ``missing_on_exchange`` (the ledger holds a live fill the exchange does not know),
``mismatch`` (both have it; the differing fields named). Paper fills have no exchange and
are not checked.

The check signs USER_DATA requests with its own read-only key pair
(``BOTFLEET_LEDGER_API_KEY`` / ``BOTFLEET_LEDGER_API_SECRET``: Binance keys can be
created with reading only), never the gateway's trading key, which stays the gateway's
alone (DESIGN "Processes"). Requests reserve weight in the fleet's Redis budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import msgspec
from sqlalchemy import and_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.binance.endpoints import MY_TRADES
from shared.binance.schemas import MyTrade
from shared.binance.signing import encode_params, hmac_sha256_signature, signature_payload
from shared.ledger import schema
from shared.ratelimit import WeightBudget

DAY_MS = 86_400_000
PAGE = 1000
ORDER_WEIGHT = 5  # myTrades with orderId (§3.12, since 2025-04-07)
_trades = msgspec.json.Decoder(list[MyTrade])


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade, from either side, in the terms they share."""

    symbol: str
    trade_id: int
    order_id: int | None
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str  # missing_in_ledger | missing_on_exchange | mismatch
    symbol: str
    trade_id: int
    detail: str

    def line(self) -> str:
        return f"{self.kind:<20} {self.symbol:<12} trade {self.trade_id:<12} {self.detail}"


_COMPARED = ("order_id", "side", "price", "qty", "commission", "commission_asset")


def compare(ledger: Fill, exchange: Fill) -> Difference | None:
    """The fields on which the two records of one trade differ (Decimals by value)."""
    wrong = [
        f"{name}: ledger {getattr(ledger, name)} exchange {getattr(exchange, name)}"
        for name in _COMPARED
        if getattr(ledger, name) != getattr(exchange, name)
    ]
    if not wrong:
        return None
    return Difference("mismatch", ledger.symbol, ledger.trade_id, "; ".join(wrong))


def reconcile(
    ledger: dict[tuple[str, int], Fill],
    exchange: dict[tuple[str, int], Fill],
    ledger_elsewhere: dict[tuple[str, int], Fill],
    exchange_elsewhere: dict[tuple[str, int], Fill],
) -> list[Difference]:
    """Every difference. ``ledger``/``exchange``: each side's trades dated in the period;
    ``*_elsewhere``: what the look-ups outside the period found for the other's extras."""
    out: list[Difference] = []
    for key in sorted(set(ledger) | set(exchange)):
        mine, theirs = ledger.get(key), exchange.get(key)
        if mine is None:
            mine = ledger_elsewhere.get(key)
        if theirs is None:
            theirs = exchange_elsewhere.get(key)
        if mine is None and theirs is not None:
            out.append(
                Difference(
                    "missing_in_ledger", key[0], key[1],
                    f"order {theirs.order_id} {theirs.side} {theirs.qty} @ {theirs.price} "
                    f"at {theirs.time}",
                )
            )  # fmt: skip
        elif theirs is None and mine is not None:
            out.append(
                Difference(
                    "missing_on_exchange", key[0], key[1],
                    f"order {mine.order_id} {mine.side} {mine.qty} @ {mine.price} at {mine.time}",
                )
            )  # fmt: skip
        elif mine is not None and theirs is not None:
            diff = compare(mine, theirs)
            if diff is not None:
                out.append(diff)
    return out


def exchange_fill(t: MyTrade) -> Fill:
    return Fill(
        symbol=t.symbol,
        trade_id=t.id,
        order_id=t.orderId,
        side="BUY" if t.isBuyer else "SELL",
        price=Decimal(t.price),
        qty=Decimal(t.qty),
        commission=Decimal(t.commission),
        commission_asset=t.commissionAsset,
        time=t.time,
    )


def _ledger_fill(row: Any) -> Fill:
    return Fill(
        symbol=row.symbol,
        trade_id=row.trade_id,
        order_id=row.exchange_order_id,
        side=row.side,
        price=row.price,
        qty=row.qty,
        commission=row.commission,
        commission_asset=row.commission_asset,
        time=row.ts,
    )


class LedgerSide:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def fills(self, start: int, end: int, symbols: Iterable[str] | None) -> list[Fill]:
        """Live fills with an exchange trade id dated in [start, end)."""
        f = schema.fills
        query = select(f).where(
            and_(f.c.mode == "live", f.c.trade_id > 0, f.c.ts >= start, f.c.ts < end)
        )
        if symbols:
            query = query.where(f.c.symbol.in_(list(symbols)))
        async with self.engine.connect() as conn:
            return [_ledger_fill(r) for r in (await conn.execute(query)).all()]

    async def by_keys(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Fill]:
        """Live fills with these (symbol, trade id), wherever they are dated."""
        found: dict[tuple[str, int], Fill] = {}
        f = schema.fills
        async with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                query = select(f).where(
                    and_(f.c.mode == "live", tuple_(f.c.symbol, f.c.trade_id).in_(chunk))
                )
                for row in (await conn.execute(query)).all():
                    fill = _ledger_fill(row)
                    found[(fill.symbol, fill.trade_id)] = fill
        return found


class ExchangeSide:
    """Signed myTrades reads (HMAC-SHA256), each reserving its weight first."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: str,
        api_secret: str,
        budget: WeightBudget | None,
        recv_window: int = 10_000,
    ) -> None:
        self.client = client
        self.api_key = api_key
        self.api_secret = api_secret
        self.budget = budget
        self.recv_window = recv_window
        self.requests = 0

    async def _get(self, params: dict[str, Any], weight: int) -> list[MyTrade]:
        if self.budget is not None:
            await self.budget.reserve(weight)
        query = encode_params(
            {**params, "recvWindow": self.recv_window, "timestamp": int(time.time() * 1000)}
        )
        signature = hmac_sha256_signature(self.api_secret, signature_payload(query))
        response = await self.client.get(
            f"{MY_TRADES.path}?{query}&signature={signature}",
            headers={"X-MBX-APIKEY": self.api_key},
        )
        self.requests += 1
        if self.budget is not None:
            used = response.headers.get("X-MBX-USED-WEIGHT-1M")
            await self.budget.correct_from_header(int(used) if used else None)
        if response.status_code != 200:
            raise RuntimeError(f"myTrades answered {response.status_code}: {response.text[:300]}")
        return _trades.decode(response.content)

    async def trades(self, symbol: str, start: int, end: int) -> list[Fill]:
        """Every trade of ``symbol`` with ``start <= time < end``: 24-hour windows (the
        most one request may span), each read on with ``fromId`` while pages are full."""
        out: list[Fill] = []
        window = start
        while window < end:
            window_end = min(end, window + DAY_MS) - 1  # endTime is inclusive
            page = await self._get(
                {"symbol": symbol, "startTime": window, "endTime": window_end, "limit": PAGE},
                MY_TRADES.weight,
            )
            while True:
                out += [exchange_fill(t) for t in page if window <= t.time <= window_end]
                if len(page) < PAGE or page[-1].time > window_end:
                    break
                page = await self._get(
                    {"symbol": symbol, "fromId": page[-1].id + 1, "limit": PAGE}, MY_TRADES.weight
                )
            window = window_end + 1
        return out

    async def of_order(self, symbol: str, order_id: int) -> list[Fill]:
        return [
            exchange_fill(t)
            for t in await self._get({"symbol": symbol, "orderId": order_id}, ORDER_WEIGHT)
        ]


async def check(
    ledger: LedgerSide, exchange: ExchangeSide, start: int, end: int, symbols: list[str] | None
) -> tuple[list[Difference], dict[str, int]]:
    """The differences for the period, and counts for the summary."""
    mine = {(f.symbol, f.trade_id): f for f in await ledger.fills(start, end, symbols)}
    wanted = sorted(set(symbols or []) | {s for s, _ in mine})
    theirs: dict[tuple[str, int], Fill] = {}
    for symbol in wanted:
        for f in await exchange.trades(symbol, start, end):
            theirs[(f.symbol, f.trade_id)] = f
    ledger_elsewhere = await ledger.by_keys([k for k in theirs if k not in mine])
    exchange_elsewhere: dict[tuple[str, int], Fill] = {}
    orders = {(f.symbol, f.order_id) for k, f in mine.items() if k not in theirs and f.order_id}
    for symbol, order_id in sorted(orders):
        assert order_id is not None
        for f in await exchange.of_order(symbol, order_id):
            exchange_elsewhere[(f.symbol, f.trade_id)] = f
    differences = reconcile(mine, theirs, ledger_elsewhere, exchange_elsewhere)
    counts = {
        "ledger_fills": len(mine),
        "exchange_trades": len(theirs),
        "symbols": len(wanted),
        "requests": exchange.requests,
    }
    return differences, counts
