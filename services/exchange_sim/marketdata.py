"""Public market data beyond klines: order book, tickers, trades (reference §3.5, §7).

Owns the answers of ``depth``, ``ticker/bookTicker``, ``ticker/24hr``, ``trades``,
``historicalTrades`` and ``aggTrades``, shared by REST and the WebSocket API, and
their request weights. Everything is read from the same per-second path the candles
and the matching engine use, so the three never disagree:

- The book: liquidity is unlimited at the path's price (see docs "Matching"), so a
  MARKET order of any size fills at the current price on either side. The best bid
  and the best ask are therefore both that price, with the largest quantity one
  MARKET order may carry (MARKET_LOT_SIZE ``maxQty``); the account's own resting
  LIMIT orders appear as deeper levels (they are on the book, and never better than
  the price, or they would have filled).
- Trades: second ``k`` with ``n`` trades has trade ids ``k*100 .. k*100+n-1`` (the
  ids klines report in ``f``/``L``); its base volume is split over them, the first
  ones (the taker-buy share of the volume) with the buyer as taker. An aggregate
  trade groups the trades of one second and one taker side (same price).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import msgspec
import numpy as np

from services.exchange_sim.apierror import INVALID_SYMBOL, ApiError, illegal_chars
from services.exchange_sim.book import d8
from services.exchange_sim.candles import SymbolMarket
from services.exchange_sim.exchange import Exchange
from services.exchange_sim.market import HOUR_S, QUOTE_UNIT, TRADE_ID_STRIDE
from services.exchange_sim.requests import Request, symbol_of

DAY_S = 86_400
MAX_TRADES = 1000
DEFAULT_TRADES = 500
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
_SYMBOLS_LEGAL = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'


# --- weights (§3.5, §7) --------------------------------------------------------------------------


def _symbol_count(params: Mapping[str, str]) -> int | None:
    """Symbols a request names (None: all of them)."""
    if params.get("symbol"):
        return 1
    raw = params.get("symbols")
    if not raw:
        return None
    try:
        return len(msgspec.json.decode(raw, type=list[str]))
    except msgspec.DecodeError:
        return 1


def depth_weight(params: Mapping[str, str]) -> int:
    """5 / 25 / 50 / 250 for limit 1-100 / 101-500 / 501-1000 / 1001-5000 (default 100)."""
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def ticker_24hr_weight(params: Mapping[str, str]) -> int:
    """2 for one symbol or 1-20 ``symbols``, 40 for 21-100, 80 for more or all."""
    count = _symbol_count(params)
    if count is None or count > 100:
        return 80
    return 2 if count <= 20 else 40


def one_or_all_weight(params: Mapping[str, str]) -> int:
    """``ticker/price`` and ``ticker/bookTicker``: 2 for one symbol, 4 otherwise."""
    return 2 if params.get("symbol") else 4


WEIGHTS: dict[tuple[str, str], Any] = {
    ("GET", "/api/v3/depth"): depth_weight,
    ("GET", "/api/v3/ticker/24hr"): ticker_24hr_weight,
    ("GET", "/api/v3/ticker/bookTicker"): one_or_all_weight,
    ("GET", "/api/v3/trades"): 25,
    ("GET", "/api/v3/historicalTrades"): 25,
    ("GET", "/api/v3/aggTrades"): 4,
    ("GET", "/api/v3/avgPrice"): 2,
    ("GET", "/api/v3/uiKlines"): 2,
}


def weight_for(method: str, path: str, params: Mapping[str, str]) -> int | None:
    found = WEIGHTS.get((method, path))
    if found is None:
        return None
    return int(found(params)) if callable(found) else int(found)


# --- parameters ----------------------------------------------------------------------------------


def symbols_of(req: Request, ex: Exchange) -> tuple[list[str], bool]:
    """The symbols a ticker request names and whether it named one (``symbol``)."""
    if req.get("symbol") is not None and req.get("symbols") is not None:
        raise ApiError(-1128, "Combination of optional parameters invalid.")
    symbol = symbol_of(req, ex.rules, required=False)
    if symbol is not None:
        return [symbol], True
    raw = req.get("symbols")
    if raw is None:
        return list(ex.rules), False
    try:
        names = [s.upper() for s in msgspec.json.decode(raw, type=list[str])]
    except msgspec.DecodeError:
        raise illegal_chars("symbols", _SYMBOLS_LEGAL) from None
    if any(s not in ex.rules for s in names):
        raise INVALID_SYMBOL
    return names, False


def _limit(req: Request, default: int, maximum: int) -> int:
    limit = req.integer("limit") or default
    if limit < 1:
        raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, maximum)


# --- the book ------------------------------------------------------------------------------------


def _now_s(ex: Exchange, market: SymbolMarket) -> int:
    return market.visible_second(ex.now_ms() // 1000)


def book_top(ex: Exchange, symbol: str) -> tuple[Decimal, Decimal]:
    """Best bid = best ask = the price a MARKET order fills at, and the most one
    MARKET order may carry there."""
    return ex.price(symbol), ex.rules[symbol].market_max_qty


def depth(ex: Exchange, req: Request) -> dict[str, Any]:
    symbol = symbol_of(req, ex.rules)
    assert symbol is not None
    limit = _limit(req, 100, 5000)
    price, qty = book_top(ex, symbol)
    bids: dict[Decimal, Decimal] = {price: qty}
    asks: dict[Decimal, Decimal] = {price: qty}
    for order in ex.book.open.get(symbol, {}).values():
        if order.type not in ("LIMIT", "LIMIT_MAKER") and not order.is_working:
            continue
        left = order.qty - order.executed_qty
        if order.side == "BUY" and order.price < price:
            bids[order.price] = bids.get(order.price, Decimal(0)) + left
        elif order.side == "SELL" and order.price > price:
            asks[order.price] = asks.get(order.price, Decimal(0)) + left
    market = ex.markets[symbol]
    return {
        "lastUpdateId": _now_s(ex, market),
        "bids": [[d8(p), d8(bids[p])] for p in sorted(bids, reverse=True)[:limit]],
        "asks": [[d8(p), d8(asks[p])] for p in sorted(asks)[:limit]],
    }


def book_ticker(ex: Exchange, symbol: str) -> dict[str, Any]:
    price, qty = book_top(ex, symbol)
    return {
        "symbol": symbol,
        "bidPrice": d8(price),
        "bidQty": d8(qty),
        "askPrice": d8(price),
        "askQty": d8(qty),
    }


def book_tickers(ex: Exchange, req: Request) -> Any:
    names, one = symbols_of(req, ex)
    rows = [book_ticker(ex, s) for s in names]
    return rows[0] if one else rows


# --- 24 h ticker ---------------------------------------------------------------------------------


def ticker_24hr(ex: Exchange, symbol: str, full: bool = True) -> dict[str, Any]:
    """The rolling 24 h window ending at the current second (§2.4, §3.5)."""
    market = ex.markets[symbol]
    now_s = _now_s(ex, market)
    first = max(now_s - DAY_S + 1, market.first_second)
    agg = market.aggregate(first, now_s + 1)
    assert agg is not None
    tick = market.spec.tick
    o, c = Decimal(agg.o) * tick, Decimal(agg.c) * tick
    volume = Decimal(agg.v) * market.spec.base_unit
    quote = Decimal(agg.q) * QUOTE_UNIT
    out: dict[str, Any] = {"symbol": symbol}
    if full:
        change = c - o
        pct = (change * 100 / o).quantize(Decimal("0.001"), ROUND_HALF_UP) if o else Decimal(0)
        bid, bid_qty = book_top(ex, symbol)
        last_qty = Decimal(0)
        for _, _, v, _, n in _seconds_back(market, now_s, first):
            last_qty = _split(v, n)[-1] * market.spec.base_unit
            break
        out |= {
            "priceChange": d8(change) if change >= 0 else "-" + d8(-change),
            "priceChangePercent": format(pct, "f"),
            "weightedAvgPrice": d8(quote / volume) if volume else d8(c),
            "prevClosePrice": d8(market.price(first - 1)),
            "lastPrice": d8(c),
            "lastQty": d8(last_qty),
            "bidPrice": d8(bid),
            "bidQty": d8(bid_qty),
            "askPrice": d8(bid),
            "askQty": d8(bid_qty),
        }
    out |= {"openPrice": d8(o), "highPrice": d8(Decimal(agg.h) * tick)}
    out |= {"lowPrice": d8(Decimal(agg.l) * tick)}
    if not full:
        out["lastPrice"] = d8(c)
    out |= {
        "volume": d8(volume),
        "quoteVolume": d8(quote),
        "openTime": first * 1000,
        "closeTime": now_s * 1000 + 999,
        "firstId": agg.first_id,
        "lastId": agg.last_id,
        "count": agg.n,
    }
    return out


def tickers_24hr(ex: Exchange, req: Request) -> Any:
    kind = (req.get("type") or "FULL").upper()
    if kind not in ("FULL", "MINI"):
        raise ApiError(-1130, "Data sent for parameter 'type' is not valid.")
    names, one = symbols_of(req, ex)
    rows = [ticker_24hr(ex, s, full=kind == "FULL") for s in names]
    return rows[0] if one else rows


# --- trades --------------------------------------------------------------------------------------


def _split(volume: int, n: int) -> list[int]:
    """``volume`` steps over ``n`` trades (the first ones get the remainder)."""
    base, extra = divmod(volume, n)
    return [base + (1 if k < extra else 0) for k in range(n)]


def _buys(volume: int, taker_buy: int, n: int) -> int:
    """How many of a second's ``n`` trades had the buyer as taker."""
    return min(n, round(n * taker_buy / volume)) if volume else 0


Second = tuple[int, int, int, int, int]  # second, price ticks, volume, taker-buy volume, trades


def _seconds_back(market: SymbolMarket, last_s: int, first_s: int) -> Iterator[Second]:
    """Traded seconds from ``last_s`` down to ``first_s``, newest first."""
    first_s = max(first_s, market.first_second)
    s = last_s
    while s >= first_s:
        hour = s // HOUR_S
        base = hour * HOUR_S
        lo = max(first_s, base) - base
        blk = market.source.block(hour)
        for i in np.flatnonzero(blk.n[lo : s - base + 1])[::-1].tolist():
            j = lo + i
            yield base + j, int(blk.p[j]), int(blk.v[j]), int(blk.tb[j]), int(blk.n[j])
        s = base - 1


def _seconds_forward(market: SymbolMarket, first_s: int, last_s: int) -> Iterator[Second]:
    """Traded seconds from ``first_s`` up to ``last_s``, oldest first."""
    s = max(first_s, market.first_second)
    while s <= last_s:
        hour = s // HOUR_S
        base = hour * HOUR_S
        hi = min(last_s, base + HOUR_S - 1) - base
        blk = market.source.block(hour)
        for i in np.flatnonzero(blk.n[s - base : hi + 1]).tolist():
            j = s - base + i
            yield base + j, int(blk.p[j]), int(blk.v[j]), int(blk.tb[j]), int(blk.n[j])
        s = base + HOUR_S


def _trade_rows(market: SymbolMarket, sec: Second) -> list[dict[str, Any]]:
    s, p, v, tb, n = sec
    price = Decimal(p) * market.spec.tick
    buys = _buys(v, tb, n)
    rows = []
    for k, steps in enumerate(_split(v, n)):
        qty = Decimal(steps) * market.spec.base_unit
        rows.append(
            {
                "id": s * TRADE_ID_STRIDE + k,
                "price": d8(price),
                "qty": d8(qty),
                "quoteQty": d8(price * qty),
                "time": s * 1000 + k * 999 // max(1, n - 1),
                "isBuyerMaker": k >= buys,
                "isBestMatch": True,
            }
        )
    return rows


def trades(ex: Exchange, req: Request, historical: bool = False) -> list[dict[str, Any]]:
    """``trades`` (the latest) and ``historicalTrades`` (``fromId`` onwards)."""
    symbol = symbol_of(req, ex.rules)
    assert symbol is not None
    limit = _limit(req, DEFAULT_TRADES, MAX_TRADES)
    market = ex.markets[symbol]
    now_s = _now_s(ex, market)
    from_id = req.integer("fromId") if historical else None
    rows: list[dict[str, Any]] = []
    if from_id is not None:
        for sec in _seconds_forward(market, from_id // TRADE_ID_STRIDE, now_s):
            rows.extend(r for r in _trade_rows(market, sec) if r["id"] >= from_id)
            if len(rows) >= limit:
                break
        return rows[:limit]
    for sec in _seconds_back(market, now_s, now_s - DAY_S):
        rows[:0] = _trade_rows(market, sec)
        if len(rows) >= limit:
            break
    return rows[-limit:]


def _agg_rows(market: SymbolMarket, sec: Second) -> list[dict[str, Any]]:
    """One aggregate per taker side of a second (same price, same time)."""
    rows = _trade_rows(market, sec)
    out = []
    for buyer_maker in (False, True):
        group = [r for r in rows if r["isBuyerMaker"] is buyer_maker]
        if not group:
            continue
        qty = sum((Decimal(r["qty"]) for r in group), Decimal(0))
        out.append(
            {
                "a": group[0]["id"],
                "p": group[0]["price"],
                "q": d8(qty),
                "f": group[0]["id"],
                "l": group[-1]["id"],
                "T": group[0]["time"],
                "m": buyer_maker,
                "M": True,
            }
        )
    return out


def agg_trades(ex: Exchange, req: Request) -> list[dict[str, Any]]:
    symbol = symbol_of(req, ex.rules)
    assert symbol is not None
    limit = _limit(req, DEFAULT_TRADES, MAX_TRADES)
    market = ex.markets[symbol]
    now_s = _now_s(ex, market)
    from_id = req.integer("fromId")
    start, end = req.integer("startTime"), req.integer("endTime")
    if from_id is not None and (start is not None or end is not None):
        raise ApiError(-1128, "Combination of optional parameters invalid.")
    if start is not None and end is not None and end - start > HOUR_S * 1000:
        raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
    rows: list[dict[str, Any]] = []
    if from_id is not None or start is not None:
        first_s = from_id // TRADE_ID_STRIDE if from_id is not None else (start or 0) // 1000
        last_s = now_s if end is None else min(now_s, end // 1000)
        for sec in _seconds_forward(market, first_s, last_s):
            for row in _agg_rows(market, sec):
                if from_id is not None and row["a"] < from_id:
                    continue
                if start is not None and row["T"] < start:
                    continue
                if end is not None and row["T"] > end:
                    continue
                rows.append(row)
            if len(rows) >= limit:
                break
        return rows[:limit]
    last_s = now_s if end is None else min(now_s, end // 1000)
    for sec in _seconds_back(market, last_s, last_s - DAY_S):
        rows[:0] = [r for r in _agg_rows(market, sec) if end is None or r["T"] <= end]
        if len(rows) >= limit:
            break
    return rows[-limit:]
