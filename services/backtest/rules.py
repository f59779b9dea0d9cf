"""The symbol's exchange filters for a backtest: a rules file, or the simulator's defaults.

A rules file is a ``SymbolRules`` JSON (what ``exchange:symbols`` holds) or an
exchangeInfo symbol entry (``GET /api/v3/exchangeInfo``'s ``symbols[i]``). Without one,
the rules the exchange simulator serves for the well-known symbols (tick, step, min
notional 5 of a stablecoin quote) are used; other symbols need a file.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec

from shared.binance.rules import SymbolRules, rules_from_json, rules_from_symbol_info
from shared.binance.schemas import SymbolInfo

# symbol: (base, quote, tick, step), as services/exchange_sim/market.py's table
_DEFAULTS = {
    "BTCUSDT": ("BTC", "USDT", "0.01", "0.00001"),
    "ETHUSDT": ("ETH", "USDT", "0.01", "0.0001"),
    "BNBUSDT": ("BNB", "USDT", "0.01", "0.001"),
    "SOLUSDT": ("SOL", "USDT", "0.01", "0.001"),
    "XRPUSDT": ("XRP", "USDT", "0.0001", "0.1"),
    "ADAUSDT": ("ADA", "USDT", "0.0001", "0.1"),
    "DOGEUSDT": ("DOGE", "USDT", "0.00001", "1"),
}


class RulesError(ValueError):
    """No usable rules for the symbol."""


def default_rules(symbol: str) -> SymbolRules:
    try:
        base, quote, tick, step = _DEFAULTS[symbol]
    except KeyError:
        known = ", ".join(sorted(_DEFAULTS))
        raise RulesError(f"no default rules for {symbol} (known: {known}); pass --rules") from None
    return SymbolRules(
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        tick_size=Decimal(tick),
        min_price=Decimal(tick),
        max_price=Decimal(1_000_000),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        max_qty=Decimal(9000) if Decimal(step) < 1 else Decimal(90_000_000),
        min_notional=Decimal(5),
        max_notional=Decimal(9_000_000),
    )


def load_rules(path: Path | None, symbol: str) -> SymbolRules:
    """The rules in ``path`` (checked to be ``symbol``'s), else :func:`default_rules`."""
    if path is None:
        return default_rules(symbol)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"--rules {path}: {exc}") from None
    try:
        rules = rules_from_json(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        try:
            rules = rules_from_symbol_info(msgspec.json.decode(data, type=SymbolInfo))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise RulesError(
                f"--rules {path}: neither SymbolRules nor exchangeInfo: {exc}"
            ) from None
    if rules.symbol != symbol:
        raise RulesError(f"--rules {path} is for {rules.symbol}, the bot trades {symbol}")
    return rules
