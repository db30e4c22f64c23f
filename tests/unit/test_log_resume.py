"""Resuming a cut log stream by timestamp: no line lost, none repeated. Table-driven over cut points."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.pods.logs import LogPosition, ResumedStream, parse_line, parse_timestamp

T0 = "2026-11-24T13:00:00"
RAW = [
    f"{T0}.100000000Z a",
    f"{T0}.100000000Z b",  # same timestamp as a: only counting tells them apart
    f"{T0}.100000000Z c",
    f"{T0}.900000001Z d",
    "2026-11-24T13:00:01.000000000Z e",
    "2026-11-24T13:00:01.000000000Z f",
]


def replay_from(position: LogPosition, raw: list[str]) -> list[str]:
    """What the API server sends after a cut: everything since the second of the last line."""
    since = position.since()
    stream = ResumedStream(position)
    out = []
    for r in raw:
        line = parse_line(r, "base")
        if since is not None and line.time < since:
            continue
        if stream.accept(line):
            out.append(line.text)
    return out


@pytest.mark.parametrize("cut_after", range(len(RAW) + 1))
def test_resume_after_any_cut_yields_each_line_once(cut_after: int) -> None:
    position = LogPosition()
    first = ResumedStream(position)
    got = [parse_line(r, "base").text for r in RAW[:cut_after] if first.accept(parse_line(r, "base"))]
    got += replay_from(position, RAW)
    assert got == ["a", "b", "c", "d", "e", "f"]


def test_two_cuts_in_a_row() -> None:
    position = LogPosition()
    stream = ResumedStream(position)
    got = [parse_line(r, "base").text for r in RAW[:2] if stream.accept(parse_line(r, "base"))]
    stream = ResumedStream(position)
    got += [parse_line(r, "base").text for r in RAW[:3] if stream.accept(parse_line(r, "base"))]
    got += replay_from(position, RAW)
    assert got == ["a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T13:00:00Z", datetime(2026, 11, 24, 13, 0, 0, tzinfo=UTC)),
        ("2026-11-24T13:00:00.5Z", datetime(2026, 11, 24, 13, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-24T13:00:00.123456789Z", datetime(2026, 11, 24, 13, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


def test_line_without_timestamp_is_kept_whole() -> None:
    assert parse_line("no stamp here\n", "base").text == "no stamp here"


def test_text_keeps_inner_spaces() -> None:
    assert parse_line(f"{T0}Z  two  spaces \n", "base").text == " two  spaces "
