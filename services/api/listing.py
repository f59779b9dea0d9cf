"""The fleet list's server-side filter, sort and page (``GET /api/v1/bots``).

Without filters in creation order, a page is read by range (``ZRANGE``). Otherwise the
columns the filters and the sort need are read for every bot in ONE command
(:meth:`Repository.bot_columns`, ``SORT_RO ... GET``), filtered and sorted here, and the
page's full records in one pipeline: two round trips for a fleet of any size.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import msgspec

from services.api.repository import column
from shared import keys
from shared.bots import BotField

# sort=FIELD (ascending) or sort=-FIELD (descending)
CONFIG_SORTS = ("name", "symbol", "strategy")
HASH_SORTS = {"status": BotField.STATUS, "updated_at": BotField.UPDATED_AT}
STAT_SORTS = ("realized_pnl", "unrealized_pnl", "total_pnl", "equity", "trades")
SORTS = ("created", *CONFIG_SORTS, *HASH_SORTS, *STAT_SORTS)
SORT_PATTERN = r"^-?(" + "|".join(SORTS) + r")$"


class _ConfigView(msgspec.Struct):
    """The few config fields the list filters and sorts on (the rest is skipped)."""

    name: str = ""
    symbol: str = ""
    strategy: str = ""


_config = msgspec.json.Decoder(_ConfigView)
_NO_CONFIG = _ConfigView()


def _config_of(raw: str | None) -> _ConfigView:
    if not raw:
        return _NO_CONFIG
    try:
        return _config.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _NO_CONFIG


def _number(raw: str | None) -> Decimal:
    try:
        return Decimal(raw) if raw else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


@dataclass(frozen=True, slots=True)
class Query:
    status: str | None = None
    symbol: str | None = None
    strategy: str | None = None
    name: str | None = None  # substring of the name, any case
    sort: str = "created"

    @property
    def field(self) -> str:
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def by_range(self) -> bool:
        """A page straight from the ``bots`` sorted set (no filter, creation order)."""
        return self.field == "created" and not (
            self.status or self.symbol or self.strategy or self.name
        )

    def columns(self) -> list[str]:
        """The SORT GET patterns this query reads (config, status, sort field)."""
        out = []
        if self.symbol or self.strategy or self.name or self.field in CONFIG_SORTS:
            out.append(column(keys.bot, BotField.CONFIG))
        if self.status or self.field == "status":
            out.append(column(keys.bot, BotField.STATUS))
        if self.field in HASH_SORTS and self.field != "status":
            out.append(column(keys.bot, HASH_SORTS[self.field]))
        if self.field in STAT_SORTS:
            out.append(column(keys.bot_stats, self.field))
        return out

    def select(self, rows: list[list[str | None]]) -> list[str]:
        """The ids of ``rows`` (``[id, *columns()]``, creation order) that match, sorted."""
        patterns = self.columns()
        config_at = _index(patterns, column(keys.bot, BotField.CONFIG))
        status_at = _index(patterns, column(keys.bot, BotField.STATUS))
        symbol = self.symbol.upper() if self.symbol else None
        name = self.name.casefold() if self.name else None
        kept: list[tuple[str, _ConfigView, list[str | None]]] = []
        for row in rows:
            values = row[1:]
            config = _config_of(values[config_at]) if config_at is not None else _NO_CONFIG
            if status_at is not None:
                status = values[status_at]
                if status is None or (self.status is not None and status != self.status):
                    continue
            if symbol is not None and config.symbol != symbol:
                continue
            if self.strategy is not None and config.strategy != self.strategy:
                continue
            if name is not None and name not in config.name.casefold():
                continue
            kept.append((str(row[0]), config, values))
        field = self.field
        if field in CONFIG_SORTS:
            kept.sort(key=lambda k: getattr(k[1], field).casefold(), reverse=self.descending)
        elif field != "created":
            at = len(patterns) - 1  # the sort column is read last
            if field in STAT_SORTS or field == "updated_at":
                kept.sort(key=lambda k: _number(k[2][at]), reverse=self.descending)
            else:
                kept.sort(key=lambda k: k[2][at] or "", reverse=self.descending)
        elif self.descending:
            kept.reverse()
        return [bot_id for bot_id, _, _ in kept]


def _index(patterns: list[str], pattern: str) -> int | None:
    return patterns.index(pattern) if pattern in patterns else None
