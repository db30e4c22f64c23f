"""An answer's fields recognised as plainly valid (`h2headers.plain_answer`) skip h2's inbound checks on the streams
the engine opens. Sound: whatever it passes, h2's checks pass unchanged; everything else is h2's to judge. The
engine against h2 on random frames, odd fields included, is tests/unit/test_h2engine.py's comparison."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.exceptions
import h2.utilities
import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clusters.kubeapi import h2engine
from gateway.clusters.kubeapi.h2headers import plain_answer
from tests.unit.test_h2engine_send import _connected, _fields

RESPONSE = h2.utilities.HeaderValidationFlags(is_client=True, is_trailer=False, is_response_header=True, is_push_promise=False)
EDGES = b"\x00\t\n\r :;AZaz09-_\x7f\x80\xff"  # the bytes where the rules turn
a_name = st.one_of(st.sampled_from([b":status", b":path", b"te", b"cookie", b"connection", b"content-type", b""]),
                   st.binary(max_size=6), st.lists(st.sampled_from(list(EDGES)), max_size=5).map(bytes))  # fmt: skip
a_value = st.one_of(st.sampled_from([b"200", b"trailers", b"", b"application/json"]), st.binary(max_size=8),
                    st.lists(st.sampled_from(list(EDGES)), max_size=5).map(bytes))  # fmt: skip


def _h2s_checks(fields: list[Any]) -> list[Any]:
    headers = h2.utilities.normalize_inbound_headers(fields, RESPONSE)
    return list(h2.utilities.validate_headers(headers, RESPONSE))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.builds(hpack.HeaderTuple, a_name, a_value), max_size=6))
def test_what_plain_answer_passes_h2s_checks_pass_unchanged(fields: list[Any]) -> None:
    if not plain_answer(fields):
        return
    assert _h2s_checks(fields) == fields


@pytest.mark.parametrize(
    "fields",
    [[(b":status", b"200")],
     [(b":status", b"201"), (b"audit-id", b"0f6c3a9e-8a2b-4c1e-9d4f-1234567890ab"), (b"cache-control", b"no-cache, private"),
      (b"content-type", b"application/json"), (b"x-kubernetes-pf-flowschema-uid", b"8e4f"), (b"date", b"Sat, 05 Dec 2026 17:00:00 GMT"),
      (b"content-length", b"931"), (b"x-empty", b"")]],
)  # fmt: skip
def test_a_kube_apiservers_answer_is_plain(fields: list[tuple[bytes, bytes]]) -> None:
    assert plain_answer(fields)
    assert _h2s_checks(fields) == fields


@pytest.mark.parametrize(
    "fields",
    [[], [(b"content-type", b"x"), (b":status", b"200")], [(b":status", b"200"), (b":status", b"200")],
     [(b":status", b"200"), (b"Content-Type", b"x")], [(b":status", b"200"), (b"te", b"trailers")],
     [(b":status", b"200"), (b"cookie", b"a")], [(b":status", b"200"), (b"keep-alive", b"1")],
     [(b":status", b" 200")], [(b":status", b"200"), (b"x", b"a\rb")], [(b":status", b"200"), (b"x", b"a\t")]],
)  # fmt: skip
def test_anything_else_is_left_to_h2(fields: list[tuple[bytes, bytes]]) -> None:
    assert not plain_answer(fields)


def test_a_plain_answer_skips_h2s_checks_and_any_other_goes_through_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Else the comparisons prove nothing about the engine's own path. (The patch counts calls of h2's checks in
    this process; it fakes no result.)"""
    calls: list[Any] = []
    checks = h2.utilities.validate_headers
    monkeypatch.setattr(h2.stream, "validate_headers", lambda *a: calls.append(a) or checks(*a))
    client, server = _connected(h2engine.Engine)
    for stream_id in (1, 3, 5):
        client.send_request(stream_id, _fields(b"GET", b"/", []), True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")], end_stream=True)  # stream 1 is h2's (the connection's first)
    server.send_headers(3, [(b":status", b"200")], end_stream=True)
    server.send_headers(5, [(b":status", b"200"), (b"x-a", b"1"), (b"cookie", b"a"), (b"cookie", b"b")], end_stream=True)
    events = client.receive_data(server.data_to_send())
    assert [flags for _, flags in calls if flags.is_client] == [RESPONSE, RESPONSE]  # the answers on streams 1 and 5
    answers = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert [(e.stream_id, e.headers) for e in answers][-1] == (5, [(b":status", b"200"), (b"x-a", b"1"), (b"cookie", b"a; b")])
    assert isinstance(client.streams[3], h2engine._Stream)


def test_trailers_go_through_h2s_checks_which_refuse_a_pseudo_header_there() -> None:
    client, server = _connected(h2engine.Engine)
    client.send_request(1, _fields(b"GET", b"/", []), True)
    client.send_request(3, _fields(b"GET", b"/", []), True)
    server.receive_data(client.data_to_send())
    server.send_headers(3, [(b":status", b"200")])
    server.send_headers(3, [(b"x-trailer", b"1")], end_stream=True)
    events = client.receive_data(server.data_to_send())
    assert [type(e).__name__ for e in events] == ["ResponseReceived", "TrailersReceived", "StreamEnded"]
    trailer_with_status = b"\x00\x00\x01\x01\x05\x00\x00\x00\x03" + b"\x88"  # HEADERS, END_STREAM: ":status 200"
    client, server = _connected(h2engine.Engine)
    client.send_request(1, _fields(b"GET", b"/", []), True)
    client.send_request(3, _fields(b"GET", b"/", []), True)
    server.receive_data(client.data_to_send())
    server.send_headers(3, [(b":status", b"200")])
    client.receive_data(server.data_to_send())
    with pytest.raises(h2.exceptions.ProtocolError, match="pseudo-header in trailer"):
        client.receive_data(trailer_with_status)


def test_an_answer_decoded_to_text_goes_through_h2() -> None:
    stream = h2engine._Stream(1, h2engine.Engine(h2.config.H2Configuration(client_side=True)).config, 65535, 65535)
    assert stream._process_received_headers([hpack.HeaderTuple(b":status", b"200")], RESPONSE, "utf-8") == [(":status", "200")]
