"""Key names follow DESIGN.md's Redis contract, hash tags included."""

from __future__ import annotations

import pytest

from shared import keys


def test_symbol_keys_share_a_hash_tag() -> None:
    assert keys.candles("BTCUSDT", "1m") == "candles:{BTCUSDT}:1m"
    assert keys.candle_stream("BTCUSDT", "1m") == "stream:candles:{BTCUSDT}:1m"
    assert keys.price("BTCUSDT") == "price:{BTCUSDT}"
    assert keys.tick_stream("BTCUSDT") == "stream:ticks:{BTCUSDT}"


def test_bot_keys_share_a_hash_tag() -> None:
    assert keys.bot("01JD3") == "bot:{01JD3}"
    assert keys.bot_lease("01JD3") == "bot:{01JD3}:lease"
    assert keys.bot_position("01JD3") == "bot:{01JD3}:position"
    assert keys.bot_stats("01JD3") == "bot:{01JD3}:stats"
    assert keys.bot_trades("01JD3") == "bot:{01JD3}:trades"
    assert keys.bot_log("01JD3") == "bot:{01JD3}:log"


def test_other_contract_keys() -> None:
    assert keys.order("abc") == "order:{abc}"
    assert keys.balances("paper") == "balances:paper"
    assert keys.health("gateway", "h-1") == "health:gateway:h-1"
    assert keys.ratelimit_weight(29_000_000) == "ratelimit:binance:weight:29000000"
    assert keys.subscription("ETHUSDT", "5m") == "ETHUSDT:5m"
    assert keys.parse_subscription("ETHUSDT:5m") == ("ETHUSDT", "5m")


@pytest.mark.parametrize("bad", ["", "a{b", "x}"])
def test_hash_tag_values_are_validated(bad: str) -> None:
    with pytest.raises(ValueError, match="hash-tag"):
        keys.bot(bad)


def test_bad_subscription_and_mode_are_named() -> None:
    with pytest.raises(ValueError, match="SYMBOL:INTERVAL"):
        keys.parse_subscription("BTCUSDT")
    with pytest.raises(ValueError, match="trading mode"):
        keys.balances("real")


def test_no_module_outside_keys_spells_a_key() -> None:
    """One place for each fact: key prefixes appear only in shared/keys.py."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[3]
    pattern = re.compile(
        r"""["'](candles|price|bot|order|balances|health|ratelimit|risk|market|stream):[{a-z]"""
    )
    offenders = []
    for path in [*root.glob("shared/**/*.py"), *root.glob("services/**/*.py")]:
        if path.name == "keys.py" and path.parent.name == "shared":
            continue
        if pattern.search(path.read_text()):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
