"""Prefixed, aligned, optionally coloured log lines, with secrets masked."""

from __future__ import annotations

from services.dev.logs import RED, RESET, Prefixer, strip_ansi


def test_every_line_is_prefixed_with_its_process_name_padded_to_one_width() -> None:
    p = Prefixer(["redis", "exchange-sim", "runner-1"], colour=False)
    assert p.format("redis", b"ready\n") == "redis        | ready"
    assert p.format("exchange-sim", "x") == "exchange-sim | x"


def test_colours_differ_per_process_and_are_reset_after_the_prefix() -> None:
    p = Prefixer(["a", "b"], colour=True)
    a, b = p.format("a", "1"), p.format("b", "1")
    assert a.startswith("\x1b[") and RESET in a
    assert a.split("a")[0] != b.split("b")[0]
    assert p.format("a", "oops", alert=True).startswith(RED)


def test_without_colour_the_childs_own_escape_codes_are_removed() -> None:
    p = Prefixer(["api"], colour=False)
    assert p.format("api", "\x1b[32minfo\x1b[0m started") == "api | info started"
    assert strip_ansi("\x1b[1;31mx\x1b[0m") == "x"


def test_undecodable_bytes_do_not_break_the_relay() -> None:
    p = Prefixer(["api"], colour=False)
    assert p.format("api", b"bad \xff byte\r\n") == "api | bad \ufffd byte"


def test_the_redactor_masks_secrets_in_relayed_lines() -> None:
    p = Prefixer(["gateway"], colour=False, redact=lambda s: s.replace("s3cret", "***"))
    assert p.format("gateway", "key=s3cret") == "gateway | key=***"
