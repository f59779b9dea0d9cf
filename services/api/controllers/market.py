"""``/api/v1/market``: listed symbols with their trading rules, last prices, candles."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from services.api.errors import NotFound
from services.api.models import CandleView, Price, SymbolInfo
from services.api.repository import Repository
from shared.binance.rules import rules_from_json
from shared.strategies.config import Interval

Symbol = Annotated[str, Parameter(pattern=r"^[A-Z0-9]{2,20}$", description="e.g. BTCUSDT")]


async def require_listed(repo: Repository, symbol: str) -> None:
    """404 for a symbol ingestion has not listed, on every per-symbol route alike."""
    if await repo.symbol_rules_json(symbol) is None:
        raise NotFound(f"unknown symbol {symbol}: not listed in exchange:symbols", field="symbol")


class MarketController(Controller):
    path = "/api/v1/market"
    tags = ["market"]

    @get("/symbols", summary="Symbols listed in exchange:symbols with their rules")
    async def symbols(self, repo: NamedDependency[Repository]) -> list[SymbolInfo]:
        out = []
        for symbol, raw in sorted((await repo.all_symbol_rules()).items()):
            try:
                rules = rules_from_json(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # unreadable rules are not tradable; ingestion rewrites them
            out.append(
                SymbolInfo(
                    symbol=symbol,
                    status=rules.status,
                    base_asset=rules.base_asset,
                    quote_asset=rules.quote_asset,
                    rules=msgspec.to_builtins(rules),
                )
            )
        return out

    @get("/{symbol:str}/price", summary="Last traded price")
    async def price(self, repo: NamedDependency[Repository], symbol: Symbol) -> Price:
        await require_listed(repo, symbol)
        value = await repo.price(symbol)
        if value is None:
            raise NotFound(f"no price for {symbol}", field="symbol")
        return Price(symbol=symbol, price=value)

    @get("/{symbol:str}/candles", summary="Closed candles, oldest first")
    async def candles(
        self,
        repo: NamedDependency[Repository],
        symbol: Symbol,
        interval: Interval = "1m",
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 500,
    ) -> list[CandleView]:
        await require_listed(repo, symbol)  # a listed symbol with no candles yet is 200 []
        return [
            CandleView(
                open_time=c.open_time,
                close_time=c.close_time,
                open=str(c.open),
                high=str(c.high),
                low=str(c.low),
                close=str(c.close),
                volume=str(c.volume),
            )
            for c in await repo.candles(symbol, interval, limit)
        ]
