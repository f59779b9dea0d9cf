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

The exchange's side comes from ``botfleet statement`` run as a child process: only the
gateway holds API keys and signs (DESIGN "Processes"), so the gateway's package reads the
trades with its own signed client and weight budget, and hands them over as JSON lines.
The check's environment carries the gateway's settings for it (a read-only key is
enough); the ledger's code never touches a key.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import and_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.binance.schemas import MyTrade
from shared.ledger import schema

_trade = msgspec.json.Decoder(MyTrade)


class StatementError(Exception):
    """``botfleet statement`` failed; the message is what it said."""


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


class StatementSide:
    """The exchange's trades, read by ``botfleet statement`` (the gateway's package)."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = 600.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s
        self.requests = 0  # child processes run

    async def _run(self, args: list[str]) -> list[Fill]:
        self.requests += 1
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services", "statement", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(child.communicate(), self.timeout_s)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise StatementError(f"no answer within {self.timeout_s:.0f}s") from None
        if child.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or ["(no output)"]
            raise StatementError(lines[-1])
        return [exchange_fill(_trade.decode(line)) for line in out.splitlines() if line.strip()]

    async def trades(self, symbols: list[str], start: int, end: int) -> list[Fill]:
        if not symbols:
            return []
        args = [f"--symbol={s}" for s in symbols]
        return await self._run([*args, f"--start={start}", f"--end={end}"])

    async def of_orders(self, orders: Iterable[tuple[str, int]]) -> list[Fill]:
        args = [f"--order={symbol}:{order_id}" for symbol, order_id in orders]
        return await self._run(args) if args else []


async def check(
    ledger: LedgerSide, exchange: StatementSide, start: int, end: int, symbols: list[str] | None
) -> tuple[list[Difference], dict[str, int]]:
    """The differences for the period, and counts for the summary."""
    mine = {(f.symbol, f.trade_id): f for f in await ledger.fills(start, end, symbols)}
    wanted = sorted(set(symbols or []) | {s for s, _ in mine})
    theirs = {(f.symbol, f.trade_id): f for f in await exchange.trades(wanted, start, end)}
    ledger_elsewhere = await ledger.by_keys([k for k in theirs if k not in mine])
    orders = sorted(
        {(f.symbol, f.order_id) for k, f in mine.items() if k not in theirs and f.order_id}
    )
    exchange_elsewhere = {
        (f.symbol, f.trade_id): f
        for f in await exchange.of_orders((s, o) for s, o in orders if o is not None)
    }
    differences = reconcile(mine, theirs, ledger_elsewhere, exchange_elsewhere)
    counts = {
        "ledger_fills": len(mine),
        "exchange_trades": len(theirs),
        "symbols": len(wanted),
    }
    return differences, counts
