"""join_partials: the kubelet's per-record timestamps inside lines longer than the runtime's 16 KiB records."""

from __future__ import annotations

import pytest

from gateway.pods.logs import CRI_PARTIAL_BYTES, join_partials, parse_line

STAMP = "2026-11-24T13:22:02.123456789Z "
A = "a" * CRI_PARTIAL_BYTES
E = "é" * (CRI_PARTIAL_BYTES // 2)  # two bytes each: a record boundary between characters


@pytest.mark.parametrize(
    ("raw", "whole"),
    [
        ("short line", "short line"),
        (A + STAMP + "tail", A + "tail"),
        (A + STAMP + A + STAMP + "end", A + A + "end"),
        (A + STAMP, A),  # a line of exactly one record, then the empty final record
        (E + STAMP + "é", E + "é"),
        ("a" * 100 + STAMP + "b" * 20000, "a" * 100 + STAMP + "b" * 20000),  # a stamp elsewhere is text
        (A + "not a stamp " + "b" * 10, A + "not a stamp " + "b" * 10),
    ],
    ids=["short", "two-records", "three-records", "exact-record", "multibyte", "stamp-in-text", "no-stamp"],
)
def test_join_partials(raw: str, whole: str) -> None:
    assert join_partials(raw) == whole


def test_parse_line_keeps_the_first_records_time_and_joins_the_rest() -> None:
    line = parse_line(STAMP + A + "2026-11-24T13:22:03Z " + "z\n", "base")
    assert line.text == A + "z"
    assert (line.time.second, line.time.microsecond) == (2, 123456)
