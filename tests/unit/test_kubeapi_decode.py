"""Decoding answers: watch lines, lists, log lines, the exec channel framing and exit status."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.clusters.kubeapi import channels as ch
from gateway.clusters.kubeapi import errors as ke
from gateway.clusters.kubeapi.decode import (
    DecodeError,
    EventType,
    LineSplitter,
    decode_list,
    decode_log_line,
    decode_object,
    decode_token,
    decode_watch_line,
)

POD = {"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "17"}}


def line(obj: object) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize("kind", ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"])
def test_watch_line_carries_type_object_and_version(kind: str) -> None:
    event = decode_watch_line(line({"type": kind, "object": POD}), cluster="c", call="w")
    assert (event.type, event.object, event.resource_version) == (EventType(kind), POD, "17")


@pytest.mark.parametrize(
    ("code", "cls"), [(410, ke.Gone), (500, ke.ServerError), (403, ke.Forbidden)], ids=["gone", "internal", "forbidden"]
)
def test_watch_error_line_raises_its_status(code: int, cls: type[ke.KubeError]) -> None:
    status = {"kind": "Status", "status": "Failure", "code": code, "reason": "x", "message": "too old resource version"}
    with pytest.raises(cls, match="too old resource version"):
        decode_watch_line(line({"type": "ERROR", "object": status}), cluster="c", call="w")


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1]", line({"type": "ADDED"}), line({"type": "WEIRD", "object": {}}),
     line({"type": "RELISTED", "object": {}})],
    ids=["not-json", "not-object", "no-object", "unknown-type", "synthetic-type-from-server"],
)  # fmt: skip
def test_malformed_watch_lines_are_decode_errors(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_watch_line(raw, cluster="c", call="w")


def test_list_page_carries_version_and_continue_token() -> None:
    page = decode_list(
        line({"kind": "PodList", "metadata": {"resourceVersion": "9", "continue": "next"}, "items": [POD]}),
        cluster="c",
        call="l",
    )
    assert (page.items, page.resource_version, page.continue_token) == ((POD,), "9", "next")
    empty = decode_list(line({"kind": "PodList", "metadata": {}, "items": None}), cluster="c", call="l")
    assert empty.items == ()


@pytest.mark.parametrize(
    ("chunks", "lines", "rest"),
    [
        ([b"a\nb\n"], [b"a", b"b"], None),
        ([b"a", b"b\nc"], [b"ab"], b"c"),
        ([b"\n\n"], [b"", b""], None),
        ([b"0123456789\n"], [b"0123", b"4567", b"89"], None),
        ([b"01234", b"56789"], [b"0123", b"4567"], b"89"),
    ],
    ids=["whole-lines", "split-across-chunks", "empty-lines-kept", "long-line-cut", "long-unterminated"],
)
def test_line_splitter(chunks: list[bytes], lines: list[bytes], rest: bytes | None) -> None:
    splitter = LineSplitter(max_line=4)
    assert [piece for chunk in chunks for piece in splitter.feed(chunk)] == lines
    assert splitter.rest() == rest


@given(data=st.lists(st.binary(max_size=40), max_size=12), max_line=st.one_of(st.none(), st.integers(1, 9)))
def test_line_splitter_gives_the_same_lines_however_the_stream_is_chunked(
    data: list[bytes], max_line: int | None
) -> None:
    """Property: the lines do not depend on the chunking; unbounded, they are exactly the newline-split stream."""
    stream = b"".join(data)
    splitter = LineSplitter(max_line=max_line)
    pieces = [piece for chunk in data for piece in splitter.feed(chunk)]
    tail = splitter.rest()
    *whole, last = stream.split(b"\n")
    if max_line is None:
        assert pieces == whole and tail == (last or None)
    else:
        assert all(len(piece) <= max_line for piece in pieces)
        assert b"".join(pieces) + (tail or b"") == stream.replace(b"\n", b"")


def test_unbounded_splitter_keeps_a_line_over_a_mebibyte_whole() -> None:
    event = b"x" * (3 << 20)
    splitter = LineSplitter(max_line=None)
    pieces = [p for i in range(0, len(event), 65536) for p in splitter.feed(event[i : i + 65536])]
    assert pieces == [] and list(splitter.feed(b"\nnext\n")) == [event, b"next"]


def test_log_line_decoding_tolerates_crlf_and_bad_utf8() -> None:
    assert decode_log_line(b"caf\xc3\xa9\r") == "café"
    assert decode_log_line(b"\xff") == "\ufffd"


def test_token_answer() -> None:
    body = line({"status": {"token": "abc", "expirationTimestamp": "2026-01-01T00:00:00Z"}})
    assert decode_token(body, cluster="c", call="t") == ("abc", "2026-01-01T00:00:00Z")
    with pytest.raises(DecodeError, match="no token"):
        decode_token(line({"status": {}}), cluster="c", call="t")


# --- exec channels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "data", "frame"),
    [
        (ch.Channel.STDIN, b"hi\n", b"\x00hi\n"),
        (ch.Channel.STDOUT, b"", b"\x01"),
        (ch.Channel.RESIZE, b"{}", b"\x04{}"),
    ],
)
def test_frames_round_trip(channel: ch.Channel, data: bytes, frame: bytes) -> None:
    assert ch.encode_frame(channel, data) == frame
    assert ch.decode_frame(frame) == (channel, data)


def test_v5_close_signal() -> None:
    assert ch.encode_close(ch.Channel.STDIN) == b"\xff\x00"


@pytest.mark.parametrize("frame", [b"", b"\x09data"], ids=["empty", "unknown-channel"])
def test_bad_frames(frame: bytes) -> None:
    with pytest.raises(ch.ExecProtocolError):
        ch.decode_frame(frame)


def non_zero(code: str) -> bytes:
    return line({"status": "Failure", "reason": "NonZeroExitCode", "message": f"exit {code}",
                 "details": {"causes": [{"reason": "ExitCode", "message": code}]}})  # fmt: skip


@pytest.mark.parametrize(
    ("status", "code"), [(line({"status": "Success"}), 0), (non_zero("3"), 3), (non_zero("137"), 137)]
)
def test_exit_code_from_status(status: bytes, code: int) -> None:
    assert ch.exit_code_from_status(status) == code


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (b"oops", "no JSON status"),
        (non_zero("x"), "not a number"),
        (
            line({"status": "Failure", "reason": "InternalError", "message": "container not found"}),
            "container not found",
        ),
    ],
)
def test_unusable_exit_status(status: bytes, message: str) -> None:
    with pytest.raises(ch.ExecProtocolError, match=message):
        ch.exit_code_from_status(status)


def test_collector_demultiplexes_and_bounds_output() -> None:
    collector = ch.ExecCollector(limit=12)
    for frame in (b"\x01", b"\x02", b'\x01{"v":', b"\x02warn", b"\x01 1}", b"\x03" + line({"status": "Success"})):
        collector.feed(frame)
    assert collector.result() == (0, b'{"v": 1}', b"warn")
    with pytest.raises(ch.ExecProtocolError, match="exceeds 12 bytes"):
        collector.feed(b"\x01more")


def test_collector_without_status_is_an_error() -> None:
    collector = ch.ExecCollector()
    collector.feed(b"\x01out")
    with pytest.raises(ch.ExecProtocolError, match="without an exit status"):
        collector.result()


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), _JSON_VALUES, max_size=6), st.booleans())
def test_objects_decode_as_the_standard_library_decodes_them(obj: dict[str, object], ascii_only: bool) -> None:
    """decode_object reads with orjson; what the API server can send (integers up to 64 bits, finite
    floats, any text, escaped or not) comes out as json.loads makes it."""
    body = json.dumps(obj, ensure_ascii=ascii_only).encode()
    assert decode_object(body, cluster="c", call="get") == json.loads(body)


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400}'])
def test_what_orjson_refuses_is_decided_by_the_standard_library(body: bytes) -> None:
    assert decode_object(body, cluster="c", call="get").keys() == {"a"}


@pytest.mark.parametrize("body", [b'{"a": "\xff"}', b"{", b'"\\ud800"', b"[1]"])
def test_what_neither_reads_as_an_object_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_object(body, cluster="c", call="get")
