"""A request's HEADERS written by the engine (`Engine.send_request`, `h2headers.BlockWriter`) instead of h2's
`send_headers`. These tests prove, against h2's `send_headers` on the same engine (whose only other change on
that path, the count of open streams, tests/unit/test_h2engine.py compares with h2's): the server decodes the same fields; the client's streams
and connection are left exactly as h2 leaves them (states, windows, ids, authority, method); h2's errors come
where h2 raises them; hpack's tables at both ends stay in step whatever mix of the engine's blocks and h2's
(a resize, a long block, the connection's first request). tests/unit/test_h2engine.py pins the h2 and hpack
methods it stands in for or relies on (an upgrade must review the engine)."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import h2.utilities
import hpack
import hpack.hpack
import hpack.table
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clusters.kubeapi import h2headers
from gateway.clusters.kubeapi.h2engine import Engine
from gateway.clusters.kubeapi.http2 import _PlainEncoder

# --- the header block alone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "prefix", "first", "expected"),
    [(10, 5, 0, b"\x0a"), (1337, 5, 0, b"\x1f\x9a\x0a"), (42, 8, 0, b"\x2a"), (30, 5, 0xE0, b"\xfe"),
     (31, 5, 0, b"\x1f\x00"), (127, 7, 0x80, b"\xff\x00"), (2, 7, 0x80, b"\x82"), (1 << 21, 7, 0, b"\x7f\x81\xff\x7f")],
)  # fmt: skip
def test_integers_are_written_as_rfc_7541_writes_them(value: int, prefix: int, first: int, expected: bytes) -> None:
    """RFC 7541 C.1's examples, and the edges: a value one short of the prefix's limit, at it, and far beyond."""
    assert h2headers.integer(value, prefix, first) == expected
    assert hpack.hpack.encode_integer(value, prefix)[0] | first == expected[0]  # hpack agrees on the prefix


NAMES = [b":method", b":scheme", b":path", b":authority", b"user-agent", b"accept", b"content-type", b"authorization",
         b"impersonate-user", b"x-custom", b"accept-encoding"]  # fmt: skip
VALUES = [b"GET", b"POST", b"https", b"/", b"/api/v1/pods", b"gzip, deflate", b"application/json", b"", b"x" * 126,
          b"y" * 127, b"z" * 300, b"Bearer " + b"t" * 1024]  # fmt: skip
a_field = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)),
    st.builds(hpack.NeverIndexedHeaderTuple, st.sampled_from(NAMES), st.sampled_from(VALUES)),
    st.builds(hpack.HeaderTuple, st.sampled_from(NAMES), st.sampled_from(VALUES)),
    st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=300)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(a_field, max_size=10)), min_size=1, max_size=12))
def test_a_block_decodes_to_its_fields_secrets_never_indexed_and_leaves_hpacks_tables_in_step(
    blocks: list[tuple[bool, list[tuple[bytes, bytes]]]],
) -> None:
    """Each block decodes (hpack's decoder) to its fields, a never-indexed field as never indexed (but a static
    entry's, written as its index as hpack writes it) and nothing else so; blocks of hpack's own encoder (with its dynamic table) in between decode as before: neither table moved."""
    writer, encoder, decoder = h2headers.BlockWriter(), hpack.Encoder(), hpack.Decoder()
    for by_hpack, fields in blocks:
        before = list(decoder.header_table.dynamic_entries)
        if by_hpack:
            assert decoder.decode(encoder.encode(fields), raw=True) == [(f[0], f[1]) for f in fields]
            continue
        decoded = decoder.decode(writer.block(fields), raw=True)
        assert [(f[0], f[1]) for f in decoded] == [(f[0], f[1]) for f in fields]
        static = {(name, value) for name, value in hpack.table.HeaderTable.STATIC_TABLE}  # indexed, as hpack does
        secret = [isinstance(f, hpack.HeaderTuple) and not f.indexable and (f[0], f[1]) not in static for f in fields]
        assert [isinstance(f, hpack.NeverIndexedHeaderTuple) for f in decoded] == secret
        assert list(decoder.header_table.dynamic_entries) == before
    assert list(decoder.header_table.dynamic_entries) == list(encoder.header_table.dynamic_entries)


def test_a_kept_field_is_written_once_and_a_path_never_kept() -> None:
    writer = h2headers.BlockWriter()
    for n in range(3):
        writer.block([(b":method", b"GET"), hpack.NeverIndexedHeaderTuple(b":path", b"/p/%d" % n)])
    assert list(writer._kept) == [(b":method", b"GET", False)]


# --- the engine's send_request against h2's send_headers --------------------------------------------------------

OURS = {"client_side": True, "header_encoding": None, "validate_outbound_headers": False, "normalize_outbound_headers": False}
H2S = {"client_side": True, "header_encoding": None}  # h2's defaults: the engine leaves every request to h2


def _client(cls: type[Engine], options: dict[str, Any]) -> Engine:
    client = cls(h2.config.H2Configuration(**options))
    if options is OURS:
        client.encoder = _PlainEncoder()
    return client


def _send(client: Engine, lean: bool, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
    if lean:
        client.send_request(stream_id, fields, end)
    else:
        client.send_headers(stream_id, fields, end_stream=end)


def _fields(method: bytes, path: bytes, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"https"), (b":authority", b"10.0.0.1:6443"),
            hpack.NeverIndexedHeaderTuple(b":path", path), *extra]  # fmt: skip


def _stream_view(stream: h2.stream.H2Stream) -> dict[str, Any]:
    view = {k: v for k, v in vars(stream).items() if k != "config"}
    view["state_machine"] = vars(stream.state_machine)
    view["_inbound_window_manager"] = vars(stream._inbound_window_manager)
    return view


def _client_view(client: h2.connection.H2Connection) -> list[object]:
    return [client.state_machine.state, client.highest_outbound_stream_id, client.outbound_flow_control_window,
            {i: _stream_view(s) for i, s in sorted(client.streams.items())},
            client.encoder.header_table.resized]  # its entries differ by design: in step with the server's, checked


def _headers_view(headers: Any) -> list[tuple[str, bytes, bytes]]:
    return [(type(h).__name__, h[0], h[1]) for h in headers]


def _event_view(event: h2.events.Event) -> tuple[str, list[tuple[str, object]]]:
    fields = [(k, _headers_view(v) if k == "headers" else repr(v)) for k, v in sorted(vars(event).items())]
    return type(event).__name__, fields


def _frames(data: bytes) -> list[tuple[int, int, int, bytes | None]]:
    """The client's frames: a header block's bytes left out (the engine's and h2's differ by design: the server's
    decoding of them is compared instead), every other frame whole."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    out: list[tuple[int, int, int, bytes | None]] = []
    at = len(preface) if data.startswith(preface) else 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind, flags, stream_id = data[at + 3], data[at + 4], int.from_bytes(data[at + 5 : at + 9], "big")
        out.append((kind, flags, stream_id, None if kind in (0x1, 0x9) else data[at + 9 : at + 9 + length]))
        at += 9 + length
    assert at == len(data)
    return out


EXTRA = [
    [], [(b"user-agent", b"podgate/0.1"), hpack.NeverIndexedHeaderTuple(b"authorization", b"Bearer " + b"t" * 1024)],
    [(b"accept", b"application/json"), (b"content-type", b"application/json")],
    [(b"impersonate-group", b"a"), (b"impersonate-group", b"b"), (b"x-custom", b"v" * 200)],
    [(b"x-large", b"L" * 17000)],  # longer than a frame: h2 writes it, with CONTINUATION
]  # fmt: skip
a_request = st.tuples(
    st.just("request"), st.sampled_from([b"GET", b"POST", b"DELETE"]), st.text("abc/?=&%", max_size=60),
    st.integers(0, len(EXTRA) - 1), st.booleans(), st.sampled_from(["next"] * 6 + ["existing", "lower", "even", "beyond"]),
)
step = st.one_of(
    a_request, a_request, a_request,
    st.tuples(st.just("settings"), st.sampled_from([None, 0, 1, 2, 3, 100]), st.sampled_from([None, 0, 64, 4096, 8192]),
              st.sampled_from([None, 16384, 20000]), st.sampled_from([None, 0, 1000, 65535, 1 << 20])),
    st.tuples(st.just("answer"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("reset"), st.integers(0, 7)),
    st.tuples(st.just("goaway")),
    st.tuples(st.just("client closes")),
)  # fmt: skip


def _act(client: Engine, lean: bool, server: h2.connection.H2Connection, kind: str, args: list[Any], seen: list[object]) -> None:
    open_ids = sorted(i for i, s in client.streams.items() if s.open)
    if kind == "request":
        method, path, extra, end, which = args
        highest = client.highest_outbound_stream_id or 0
        stream_id = {"next": highest + 2 if highest else 1, "existing": open_ids[0] if open_ids else 1,
                     "lower": max(highest - 2, 1), "even": highest + 1, "beyond": (1 << 31) + 1}[which]  # fmt: skip
        end = end or stream_id in client.streams  # trailers without END_STREAM: h2 raises after encoding them
        _send(client, lean, stream_id, _fields(method, b"/" + path.encode(), EXTRA[extra]), end)
        seen.append("sent")
    elif kind == "settings":
        codes = h2.settings.SettingCodes
        kinds = (codes.MAX_CONCURRENT_STREAMS, codes.HEADER_TABLE_SIZE, codes.MAX_FRAME_SIZE, codes.INITIAL_WINDOW_SIZE)
        wanted = dict(zip(kinds, args, strict=True))
        if wanted[codes.HEADER_TABLE_SIZE] == server.local_settings.header_table_size:
            del wanted[codes.HEADER_TABLE_SIZE]  # the same size again: hpack 4.2.0 then forgets the size update
        server.update_settings({code: value for code, value in wanted.items() if value is not None})
    elif kind == "answer" and open_ids:
        stream_id = open_ids[args[0] % len(open_ids)]
        server_stream = server.streams.get(stream_id)
        if server_stream is not None and server_stream.open and not server_stream.state_machine.headers_sent:
            server.send_headers(stream_id, [(b":status", b"200")], end_stream=args[1])
    elif kind == "reset" and open_ids:
        client.reset_stream(open_ids[args[0] % len(open_ids)])
    elif kind == "goaway":
        server.close_connection()
    elif kind == "client closes":
        client.close_connection()


def _play(lean: bool, options: dict[str, Any], steps: list[tuple[Any, ...]]) -> list[object]:
    """What happens at both ends, step by step: what the client raised or sent (frames), the server's events
    for it (the decoded fields), the client's streams, and whether hpack's tables at both ends are in step."""
    client = _client(Engine, options)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 16})  # as Http2Connection does
    server.initiate_connection()
    seen: list[object] = []

    def deliver() -> None:
        """Both ends' bytes exchanged until neither has any (SETTINGS and their ACKs, answers, GOAWAY)."""
        for _ in range(4):
            to_server, to_client = client.data_to_send(), server.data_to_send()
            if not to_server and not to_client:
                return
            seen.append(_frames(to_server))
            for receiver, data, name in ((server, to_server, "server"), (client, to_client, "client")):
                try:
                    seen.append([_event_view(e) for e in receiver.receive_data(data)])
                except h2.exceptions.ProtocolError as e:
                    seen.append(f"{name} raised {type(e).__name__}: {e}")

    deliver()
    for kind, *args in steps:
        try:
            _act(client, lean, server, kind, args, seen)
        except h2.exceptions.H2Error as e:  # an answer, a reset or SETTINGS on a connection that ended
            seen.append(f"{kind} raised {type(e).__name__}: {e}")
        deliver()
        seen.append(_client_view(client))
        # hpack's tables at both ends in step (a resize is in step once the next block carries its size update)
        # while the server decodes (one that ended the connection decodes no more)
        in_step = list(server.decoder.header_table.dynamic_entries) == list(client.encoder.header_table.dynamic_entries)
        ended = server.state_machine.state is h2.connection.ConnectionState.CLOSED
        seen.append(in_step or ended or client.encoder.header_table.resized)
    return seen


@settings(max_examples=500, deadline=None)
@given(st.lists(step, min_size=1, max_size=30))
def test_send_request_ends_as_h2s_send_headers_on_any_sequence(steps: list[tuple[Any, ...]]) -> None:
    """Requests (on the next stream id, and on ids h2 refuses), the server's SETTINGS (stream limit, table size,
    frame size), answers, resets, GOAWAY, the client closing, in any order: the same at both ends, step by step."""
    assert _play(True, OURS, steps) == _play(False, OURS, steps)


@settings(max_examples=50, deadline=None)
@given(st.lists(step, min_size=1, max_size=15))
def test_with_h2s_normalisation_and_validation_on_every_request_is_h2s(steps: list[tuple[Any, ...]]) -> None:
    assert _play(True, H2S, steps) == _play(False, H2S, steps)


class _Counting(Engine):
    """Counts the requests left to h2."""

    left_to_h2 = 0

    def send_headers(self, *args: Any, **kwargs: Any) -> None:
        self.left_to_h2 += 1
        super().send_headers(*args, **kwargs)


def _connected(cls: type[Engine]) -> tuple[Engine, h2.connection.H2Connection]:
    client = _client(cls, OURS)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return client, server


def test_at_the_servers_stream_limit_send_request_refuses_as_h2_does_until_a_stream_ends() -> None:
    client, server = _connected(Engine)
    client.send_request(1, _fields(b"GET", b"/", []), True)  # the first is h2's
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2})
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    client.send_request(3, _fields(b"GET", b"/", []), True)
    with pytest.raises(h2.exceptions.TooManyStreamsError):
        client.send_request(5, _fields(b"GET", b"/", []), True)
    server.send_headers(1, [(b":status", b"200")], end_stream=True)
    client.receive_data(server.data_to_send())
    client.send_request(5, _fields(b"GET", b"/", []), True)
    assert [i for i, s in client.streams.items() if s.open] == [3, 5]


def test_the_engine_writes_the_common_request_itself_and_leaves_the_rest_to_h2() -> None:
    """Else the comparison above proves nothing about the engine's own path: h2 writes the connection's first
    request and the first after a table resize; the engine the others."""
    client, server = _connected(_Counting)
    for stream_id in (1, 3, 5):
        client.send_request(stream_id, _fields(b"GET", b"/", EXTRA[1]), True)
    assert isinstance(client, _Counting) and client.left_to_h2 == 1  # the first, the connection still IDLE
    server.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 64})
    client.receive_data(server.data_to_send())
    for stream_id in (7, 9):
        client.send_request(stream_id, _fields(b"GET", b"/", EXTRA[1]), True)
    assert client.left_to_h2 == 2  # the one after the resize (hpack's size update leads its block)
    client.send_request(11, _fields(b"GET", b"/", EXTRA[4]), True)
    assert client.left_to_h2 == 3  # a block longer than a frame


def test_the_stream_transitions_send_request_takes_for_h2s_are_unchanged() -> None:
    """With the methods pinned in tests/unit/test_h2engine.py (RELIED_ON): the states send_request sets."""
    transitions = h2.stream._transitions
    states, inputs = h2.stream.StreamState, h2.stream.StreamInputs
    assert transitions[(states.IDLE, inputs.SEND_HEADERS)] == (h2.stream.H2StreamStateMachine.request_sent, states.OPEN)
    assert transitions[(states.OPEN, inputs.SEND_END_STREAM)] == (None, states.HALF_CLOSED_LOCAL)
    machine = h2.connection.H2ConnectionStateMachine()
    opened = h2.connection.ConnectionState.CLIENT_OPEN
    assert machine._transitions[(opened, h2.connection.ConnectionInputs.SEND_HEADERS)] == (None, opened)
