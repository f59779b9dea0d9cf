"""The gateway's Lua knows statuses, field names and argument positions only from Python
(services/gateway/scripts.py), and does no arithmetic on money as Lua numbers."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from services.gateway import scripts
from services.gateway.orders import FINAL, RecordField, RecordStatus
from services.gateway.risk_state import (
    EMPTY,
    Position,
    RiskField,
    drawdown_breach,
    sell_split,
)
from shared.bots import BotField
from shared.messages import Side
from shared.money import AmountOutOfRange, from_units, to_units, to_units_ceiling, units_text
from shared.risk_limits import RiskLimits

LUA = Path(scripts.__file__).parent / "lua"
_STRING = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)\"""")


_REPLY_WORD = re.compile(r"return \{'\w+'")  # a reply's first word: store.py parses it


def _literals(path: Path) -> list[str]:
    code = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
    return [a or b for a, b in _STRING.findall(_REPLY_WORD.sub("return {", code))]


def _supplied() -> set[str]:
    return (
        {s.value for s in RecordStatus}
        | {f.value for f in RecordField}
        | {f.value for f in BotField}
        | {f.value for f in RiskField}
        | set(RiskLimits.model_fields)
        | {s.value for s in Side}
    )


@pytest.mark.parametrize("path", sorted(LUA.glob("*.lua")), ids=lambda p: p.name)
def test_a_script_spells_no_status_or_field_that_python_supplies(path: Path) -> None:
    supplied = _supplied()
    for literal in _literals(path):
        assert literal not in supplied, f"{path.name} spells {literal!r}: take it from the prelude"
        for prefix in ("pos:", "exposure:", "realized:", ":free", ":locked"):
            assert prefix not in literal, f"{path.name} builds a field name from {literal!r}"


@pytest.mark.parametrize("path", sorted(LUA.glob("*.lua")), ids=lambda p: p.name)
def test_a_script_reads_arguments_only_through_its_generated_header(path: Path) -> None:
    body = path.read_text()
    if path.name != "records.lua":  # records.lua unpacks its one argument itself
        assert "ARGV" not in body
    assert not re.search(r"KEYS\[\d", body), f"{path.name} indexes KEYS by number"
    assert "tonumber(ARGV" not in body and "string.format('%.8f'" not in body


def test_the_prelude_holds_every_status_and_field_and_final_matches_python() -> None:
    prelude = scripts.prelude()
    for status in RecordStatus:
        assert f"{status.name} = '{status.value}'" in prelude
    for f in BotField:
        assert f"{f.name} = '{f.value}'" in prelude
    for name in RiskLimits.model_fields:
        assert f"{name} = '{name}'" in prelude
    final = re.search(r"local FINAL = \{(.*)\}", prelude)
    assert final is not None
    assert set(re.findall(r"\[ST\.(\w+)\]", final.group(1))) == {s.name for s in FINAL}


def test_each_script_binds_its_arguments_in_the_order_python_encodes_them() -> None:
    built = scripts.build()
    header = re.search(
        r"local A = cmsgpack\.unpack\(ARGV\[1\]\)\nlocal (.*) = (.*)\n", built["admit"]
    )
    assert header is not None
    names = [n.strip() for n in header.group(1).split(",")]
    assert names == list(scripts.AdmitArgs.__struct_fields__)
    assert header.group(2) == ", ".join(f"A[{i}]" for i in range(1, len(names) + 1))
    keys = re.search(r"^local (k_[^=]*) = (KEYS.*)$", built["finalize"], re.M)
    assert keys is not None
    assert [k.strip() for k in keys.group(1).split(",")] == [
        f"k_{n}" for n in scripts.FINALIZE_KEYS
    ]
    # the Struct goes over as a positional array, in field order
    args = scripts.AdoptArgs(cid="c", intent="{}", mode="paper", now="1", instance="i")
    assert msgspec.msgpack.decode(scripts.encode(args)) == ["c", "{}", "paper", "1", "i"]
    with pytest.raises(TypeError):
        scripts.keys_of(scripts.REJECT_KEYS, order="o")


def test_units_are_exact_and_bounded() -> None:
    assert to_units(Decimal("1000000000.00000001")) == 100000000000000001
    assert from_units(b"100000000000000001") == Decimal("1000000000.00000001")
    assert units_text("-150000000") == "-1.50000000" and units_text(None) == "0.00000000"
    assert to_units_ceiling(Decimal("0.000000001")) == 1
    for bad in (Decimal("1e10"), Decimal("NaN"), Decimal("-Infinity")):
        with pytest.raises(AmountOutOfRange):
            to_units(bad)


def test_a_partial_sell_takes_its_share_of_cost_and_the_shares_sum_to_the_cost() -> None:
    position = Position(qty=300, cost=1000)  # cost per unit 3.333...
    first = sell_split(position, 100, 500)
    assert (first.sold, first.cost_out, first.realized, first.closes) == (100, 333, 167, False)
    rest = first.after(position)
    second = sell_split(rest, 100, 500)
    last = sell_split(second.after(rest), 100, 500)
    assert last.closes and first.cost_out + second.cost_out + last.cost_out == 1000
    assert last.after(second.after(rest)) == EMPTY


def test_a_sell_of_more_than_held_books_only_the_held_share() -> None:
    split = sell_split(Position(qty=100, cost=1000), 400, 2000)  # 4x what is held
    assert (split.sold, split.cost_out, split.realized, split.closes) == (100, 1000, -500, True)
    assert sell_split(EMPTY, 400, 2000).sold == 0


def test_drawdown_is_judged_in_decimal_from_units() -> None:
    # base 1000, peak +100, total -10: (100 - -10) / 1100 = 10 %
    assert drawdown_breach("-1000000000", "10000000000", "10", Decimal(1000)) == (
        "max_drawdown_pct: 10.0000% below peak, limit 10"
    )
    assert drawdown_breach("-999999999", "10000000000", "10", Decimal(1000)) is None
    assert drawdown_breach("-1000000000", "10000000000", "", Decimal(1000)) is None
