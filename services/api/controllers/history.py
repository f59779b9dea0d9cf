"""The ledger's history: ``/api/v1/trades`` (fills), ``/api/v1/orders/history`` (final
orders), ``/api/v1/round-trips`` and ``/api/v1/equity`` (per bot or the portfolio).

Filters: ``bot_id``, ``symbol``, ``side``, ``start``/``end`` (epoch ms, end exclusive).
Pages are newest first; ``next_cursor`` fetches the next one. ``?format=csv`` answers
every row the filters select from the cursor on, as one CSV (header first), in the same
order and with the same values as walking the JSON pages.

``/api/v1/orders`` (no suffix) stays the live tail of ``stream:executions`` in Redis.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.errors import BadRequest
from services.api.ledger import LedgerReader
from shared.bots import BOT_ID_PATTERN
from shared.ledger import history
from shared.messages import INT64_MAX, SYMBOL_PATTERN

BotId = Annotated[str | None, Parameter(pattern=BOT_ID_PATTERN, description="one bot")]
SymbolQ = Annotated[str | None, Parameter(pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT")]
SideQ = Annotated[Literal["BUY", "SELL"] | None, Parameter(description="BUY or SELL")]
Start = Annotated[
    int | None, Parameter(ge=0, le=INT64_MAX, description="from this epoch ms (inclusive)")
]
End = Annotated[
    int | None, Parameter(ge=0, le=INT64_MAX, description="until this epoch ms (exclusive)")
]
Cursor = Annotated[
    str | None, Parameter(max_length=19, description="next_cursor of the previous page")
]
Limit = Annotated[int, Parameter(ge=1, le=history.MAX_PAGE)]
Format = Annotated[Literal["json", "csv"], Parameter(description="json pages or one CSV")]
Day = Annotated[str | None, Parameter(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]

_EMPTY = history.Page(items=[], next_cursor=None)

Query = Callable[[AsyncEngine, history.Filters, str | None, int], Awaitable[history.Page]]


class _CsvStream(Stream):
    """Litestar 2.x's Stream lets the handler's media type (JSON here) win over its own,
    contrary to its docstring: this one keeps ``text/csv``."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(*args, **kwargs)


async def _call(
    query: Query, engine: AsyncEngine, *, filters: history.Filters, cursor: str | None, limit: int
) -> history.Page:
    return await query(engine, filters, cursor, limit)


def _cursor(cursor: str | None) -> str | None:
    try:
        history.parse_cursor(cursor)
    except ValueError as exc:
        raise BadRequest(str(exc), field="cursor") from None
    return cursor


async def _answer(
    ledger: LedgerReader,
    query: Query,
    struct: type[Any],
    name: str,
    filters: history.Filters,
    cursor: str | None,
    limit: int,
    fmt: str,
) -> Any:
    cursor = _cursor(cursor)
    if fmt == "json":
        return await ledger.read(lambda engine: query(engine, filters, cursor, limit), _EMPTY)
    # The first page is read before answering, so a ledger that cannot be read is a 503
    # rather than a cut-off CSV.
    first = await ledger.read(
        lambda engine: query(engine, filters, cursor, history.MAX_PAGE), _EMPTY
    )

    async def lines() -> AsyncIterator[str]:
        yield history.csv_header(struct)
        page = first
        while True:
            yield history.csv_rows(page.items)
            if page.next_cursor is None:
                return
            page = await ledger.read(
                functools.partial(
                    _call, query, filters=filters, cursor=page.next_cursor, limit=history.MAX_PAGE
                ),
                _EMPTY,
            )

    return _CsvStream(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


class HistoryController(Controller):
    path = "/api/v1"
    tags = ["history"]

    @get("/trades", summary="Fills from the ledger, newest first (filters, cursor, ?format=csv)")
    async def trades(
        self,
        ledger: NamedDependency[LedgerReader],
        bot_id: BotId = None,
        symbol: SymbolQ = None,
        side: SideQ = None,
        start: Start = None,
        end: End = None,
        cursor: Cursor = None,
        limit: Limit = 100,
        format: Format = "json",
    ) -> history.Page | Response[Any]:
        filters = history.Filters(
            bot_id=bot_id, symbol=symbol, side=side, start_ms=start, end_ms=end
        )
        return await _answer(  # type: ignore[no-any-return]
            ledger, history.trades, history.Trade, "trades", filters, cursor, limit, format
        )

    @get(
        "/orders/history",
        summary="Final orders from the ledger, newest first (filters, cursor, ?format=csv)",
    )
    async def orders(
        self,
        ledger: NamedDependency[LedgerReader],
        bot_id: BotId = None,
        symbol: SymbolQ = None,
        side: SideQ = None,
        start: Start = None,
        end: End = None,
        cursor: Cursor = None,
        limit: Limit = 100,
        format: Format = "json",
    ) -> history.Page | Response[Any]:
        filters = history.Filters(
            bot_id=bot_id, symbol=symbol, side=side, start_ms=start, end_ms=end
        )
        return await _answer(  # type: ignore[no-any-return]
            ledger, history.orders, history.Order, "orders", filters, cursor, limit, format
        )

    @get(
        "/round-trips",
        summary="Closed round trips from the ledger, newest first (by close time range)",
    )
    async def round_trips(
        self,
        ledger: NamedDependency[LedgerReader],
        bot_id: BotId = None,
        symbol: SymbolQ = None,
        start: Start = None,
        end: End = None,
        cursor: Cursor = None,
        limit: Limit = 100,
        format: Format = "json",
    ) -> history.Page | Response[Any]:
        filters = history.Filters(bot_id=bot_id, symbol=symbol, start_ms=start, end_ms=end)
        return await _answer(  # type: ignore[no-any-return]
            ledger,
            history.round_trips,
            history.RoundTrip,
            "round-trips",
            filters,
            cursor,
            limit,
            format,
        )

    @get(
        "/equity",
        summary="Daily equity of one bot, or of the portfolio (every bot summed), oldest first",
    )
    async def equity(
        self,
        ledger: NamedDependency[LedgerReader],
        bot_id: BotId = None,
        start_day: Day = None,
        end_day: Day = None,
    ) -> list[history.EquityPoint]:
        return await ledger.read(
            lambda engine: history.equity(engine, bot_id, start_day, end_day), []
        )
