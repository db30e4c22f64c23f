"""The HTTP/2 client's h2 engine (kubeapi/h2engine.py) overrides h2's private `_receive_frame` (to drop the trace
log's `repr` of every frame) and reads ordinary DATA frames itself. These tests fail when h2 changes a method the
engine replaces or calls (an upgrade must review the engine), and prove the engine answers every frame as h2
does, the error paths (a frame on a stream reset or ended) included."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import itertools
import textwrap
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
import h2.stream
import h2.utilities
import h2.windows
import hpack
import hyperframe.frame
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.clusters.kubeapi.h2engine import Engine


def _body(function: object) -> str:
    """The function's statements (docstring left out) as an AST dump: comments and layout do not count."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    definition = tree.body[0]
    assert isinstance(definition, ast.FunctionDef)
    statements = definition.body
    if statements and isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
        statements = statements[1:]
    return "\n".join(ast.dump(statement) for statement in statements)


def _pair(client_class: type[h2.connection.H2Connection]) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = client_class(h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
    ))  # as Http2Connection configures it  # fmt: skip
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/api/v1/pods")]


def _script(client_class: type[h2.connection.H2Connection], case: str) -> list[str]:
    """What the client does with one server-side scenario: its events (as text) and what it sends back."""
    client, server = _pair(client_class)
    seen: list[str] = []

    def deliver() -> None:
        data = server.data_to_send()
        try:
            events = client.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            seen.append(f"raised {type(e).__name__}")
        else:
            seen.extend(repr(e) for e in events)
        seen.append(repr(client.data_to_send()))
        server.receive_data(client.data_to_send())

    for stream_id in (1, 3):
        client.send_headers(stream_id, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    server.send_data(1, b"line\n" * 10)
    server.send_headers(3, [(b":status", b"404")], end_stream=True)
    deliver()
    if case == "reset by the client, data still coming":
        client.reset_stream(1)
        server.send_data(1, b"late")  # in flight when the server learns of the reset
    elif case == "ended, data after the end":
        server.end_stream(1)
        deliver()
        server._get_stream_by_id(1).state_machine.state = h2.stream.StreamState.OPEN  # a server that sends after its end
        server.send_data(1, b"after the end")
    elif case == "ping, settings, window update":
        server.ping(b"12345678")
        server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 7})
        server.increment_flow_control_window(1000)
    elif case == "reset by the server":
        server.reset_stream(1, h2.errors.ErrorCodes.INTERNAL_ERROR)
    elif case == "goaway":
        server.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=1)
    deliver()
    return seen


@pytest.mark.parametrize(
    "case",
    ["plain", "reset by the client, data still coming", "ended, data after the end", "ping, settings, window update",
     "reset by the server", "goaway"],
)  # fmt: skip
def test_the_engine_answers_every_frame_as_h2_does(case: str) -> None:
    ours, theirs = _script(Engine, case), _script(h2.connection.H2Connection, case)
    assert ours == theirs
    assert len(ours) >= 4  # events and answers were compared, not two empty lists


class _Recorder:
    """An h2 logger that keeps what it is asked to log."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, fmtstr: str, *args: object) -> None:
        self.lines.append(fmtstr % args)

    def trace(self, fmtstr: str, *args: object) -> None:
        self.lines.append(fmtstr % args)


@pytest.mark.parametrize("engine_class", [Engine, h2.connection.H2Connection])
def test_the_engine_does_not_format_received_frames(engine_class: type[h2.connection.H2Connection]) -> None:
    """The point of the override: no frame is formatted for the log on receive (h2 formats every one)."""
    recorder = _Recorder()
    client = engine_class(h2.config.H2Configuration(client_side=True, header_encoding=None, logger=recorder))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")])
    server.send_data(1, b"x", end_stream=True)
    events = client.receive_data(server.data_to_send())
    assert [type(e) for e in events] == [h2.events.ResponseReceived, h2.events.DataReceived, h2.events.StreamEnded]
    frames = [line for line in recorder.lines if line.startswith("Received frame")]
    assert len(frames) == (0 if engine_class is Engine else 4)  # h2: each frame (SETTINGS, ACK, HEADERS, DATA)


OPEN_STREAMS = '''
count = 0
to_delete = []
for stream_id, stream in self.streams.items():
    if stream.open and (stream_id % 2 == remainder):
        count += 1
    elif stream.closed:
        to_delete.append(stream_id)
for stream_id in to_delete:
    stream = self.streams.pop(stream_id)
    self._closed_streams[stream_id] = stream.closed_by
return count
'''  # h2 4.4.1's H2Connection._open_streams, which Engine.forget does for one stream


def test_forget_drops_a_stream_as_h2s_walk_does_and_h2_still_asks_the_count_of_every_new_stream() -> None:
    theirs = _body(h2.connection.H2Connection._open_streams)
    assert theirs == "\n".join(ast.dump(s) for s in ast.parse(OPEN_STREAMS).body), "h2's walk changed: see h2engine"
    assert "self.open_outbound_streams" in inspect.getsource(h2.connection.H2Connection.send_headers)


def _limited_pair(client_class: type[h2.connection.H2Connection], limit: int) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client, server = _pair(client_class)
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limit})
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.sampled_from(["open", "end", "reset"]), st.integers(0, 7), st.booleans()), max_size=60))
def test_the_engine_refuses_a_stream_exactly_when_h2_does_and_holds_only_open_streams_once_forgotten(
    limit: int, steps: list[tuple[str, int, bool]]
) -> None:
    """Streams opened, ended by the server or reset by the client, in any order, against a server limit: the
    engine's shortcut of h2's count gives every `send_headers` h2's outcome; streams forgotten leave h2's table."""
    ours, our_server = _limited_pair(Engine, limit)
    theirs, their_server = _limited_pair(h2.connection.H2Connection, limit)
    assert isinstance(ours, Engine)
    opened: list[int] = []
    forgotten: set[int] = set()
    for action, pick, forget in steps:
        outcomes = []
        for client, server in ((ours, our_server), (theirs, their_server)):
            if action == "open":
                stream_id = client.get_next_available_stream_id()
                try:
                    client.send_headers(stream_id, REQUEST, end_stream=True)
                    outcomes.append("opened")
                except h2.exceptions.TooManyStreamsError:
                    outcomes.append("refused")
                server.receive_data(client.data_to_send())
            elif opened:
                stream_id = opened[pick % len(opened)]
                if action == "end":
                    server.send_headers(stream_id, [(b":status", b"200")], end_stream=True)
                    client.receive_data(server.data_to_send())
                else:
                    client.reset_stream(stream_id)
                    server.receive_data(client.data_to_send())
                if forget and client is ours:
                    ours.forget(stream_id)
                    forgotten.add(stream_id)
        if action == "open":
            assert outcomes[0] == outcomes[1]
            if outcomes[0] == "opened":
                opened.append(ours.highest_outbound_stream_id or 0)
        elif opened:
            opened.remove(opened[pick % len(opened)])
        open_ids = sorted(i for i, s in ours.streams.items() if s.open)
        assert open_ids == sorted(opened) == sorted(i for i, s in theirs.streams.items() if s.open)
        assert not forgotten & set(ours.streams)  # a forgotten stream (closed) is out of h2's table at once
        assert len(ours.streams) <= len(opened) + 64  # closed streams not forgotten: dropped by h2's walk in time


# --- DATA frames read by the engine itself: the same outcome as h2's, frame by frame, read by read ---------------

ODD_FIELDS = [  # an answer's fields h2's inbound checks refuse or change (plain_answer leaves them to h2)
    [(b"Content-Type", b"text/plain")], [(b"connection", b"close")], [(b"x-a", b" padded")], [(b"x-a", b"a\nb")],
    [(b"te", b"gzip")], [(b"te", b"trailers")], [(b"cookie", b"a=1"), (b"cookie", b"b=2")], [(b":path", b"/")],
    [(b"x:y", b"1")], [(b"", b"1")], [(b"x-a", b"tab\t")], [(b"x-\x7f", b"1")], [(b"x-a", b"\x00")],
]  # fmt: skip
STREAMS = [1, 3, 5, 7, 9, 0]  # 1, 3 and 5 opened with their request ended, 7 with its body still open; 9 never; 0
def _mostly(common: st.SearchStrategy[tuple[Any, ...]], *others: st.SearchStrategy[tuple[Any, ...]]) -> st.SearchStrategy[tuple[Any, ...]]:
    """`common` seven times in ten, one of `others` else (one_of weighs its branches alike, a repeated one once)."""
    return st.integers(0, 9).flatmap(lambda n: common if n < 7 else st.one_of(*others))


frame_step = _mostly(
    st.tuples(st.just("data"), st.sampled_from(STREAMS), st.integers(0, 40) | st.integers(8000, 16384), st.booleans(),
              st.sampled_from([None, None, None, 0, 3, 60])),  # the common frame; big ones: windows run out
    st.tuples(st.just("headers"), st.sampled_from(STREAMS), st.booleans(), st.booleans(), st.sampled_from([None, 0, 5]),
              st.integers(0, len(ODD_FIELDS))),
    st.tuples(st.just("oversized data"), st.sampled_from(STREAMS)),
    st.tuples(st.just("window update"), st.sampled_from(STREAMS), st.integers(1, 1 << 31)),
    st.tuples(st.just("reset"), st.sampled_from(STREAMS)),
    st.tuples(st.just("ping")),
    st.tuples(st.just("settings"), st.integers(0, 200)),
    st.tuples(st.just("goaway"), st.sampled_from(STREAMS)),
)  # fmt: skip
common_step = _mostly(  # what a server mostly sends once the streams are answered: DATA on them, ends, a few others
    st.tuples(st.just("data"), st.sampled_from(STREAMS[:4]), st.sampled_from([0, 1, 3, 40]) | st.integers(0, 40)
              | st.sampled_from([16383, 16384]) | st.integers(8000, 16384),  # 65,535 = 3 x 16,384 + 16,383
              st.integers(0, 9).map(lambda n: n == 0), st.none()),
    st.tuples(st.just("window update"), st.sampled_from([*STREAMS[:4], 0]), st.integers(1, 1 << 16)),
    st.tuples(st.just("ping")), st.tuples(st.just("settings"), st.integers(0, 200)),
)  # fmt: skip
common_steps = st.lists(common_step, min_size=6, max_size=30)
ended_steps = st.tuples(common_steps, st.integers(0, 30)).map(  # a GOAWAY among them: h2 takes no frame after it
    lambda steps_at: [*steps_at[0][: steps_at[1]], ("goaway", 7), *steps_at[0][steps_at[1] :]]
)


def _server_bytes(steps: list[tuple[Any, ...]]) -> bytes:
    """The frames as a server would write them (right or wrong: a DATA frame on a stream not answered yet, too
    long, with too much padding, beyond a content-length...), raw, so that any byte sequence can be sent."""
    encoder = hpack.Encoder()
    out = bytearray()
    for step in steps:
        kind, *args = step
        if kind == "headers":
            stream_id, end_stream, split, length, odd = args
            fields = [(b":status", b"200"), (b"content-type", b"text/plain")] + (ODD_FIELDS[odd - 1] if odd else [])
            if odd == len(ODD_FIELDS):
                fields = fields[1:]  # no :status
            block = encoder.encode(fields + ([(b"content-length", str(length).encode())] if length is not None else []))
            first = hyperframe.frame.HeadersFrame(stream_id or 1, block[:3] if split else block)
            if end_stream:
                first.flags.add("END_STREAM")
            if not split:
                first.flags.add("END_HEADERS")
            out += first.serialize()
            if split:
                rest = hyperframe.frame.ContinuationFrame(stream_id or 1, block[3:])
                rest.flags.add("END_HEADERS")
                out += rest.serialize()
        elif kind == "data":
            stream_id, size, end_stream, padding = args
            frame = hyperframe.frame.DataFrame(stream_id or 1, b"x" * size)
            if end_stream:
                frame.flags.add("END_STREAM")
            if padding is not None:
                frame.flags.add("PADDED")
                frame.pad_length = min(padding, 255)
            data = bytearray(frame.serialize())
            if stream_id == 0:
                data[5:9] = b"\0\0\0\0"
            out += data
        elif kind == "oversized data":
            frame = hyperframe.frame.DataFrame(args[0] or 1, b"y" * 16385)
            out += frame.serialize()
        elif kind == "window update":
            update = hyperframe.frame.WindowUpdateFrame(args[0])
            update.window_increment = min(args[1], (1 << 31) - 1)
            out += update.serialize()
        elif kind == "reset":
            out += hyperframe.frame.RstStreamFrame(args[0] or 1).serialize()
        elif kind == "ping":
            out += hyperframe.frame.PingFrame(0, b"12345678").serialize()
        elif kind == "settings":
            out += hyperframe.frame.SettingsFrame(0, {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: args[0]}).serialize()
        else:
            goaway = hyperframe.frame.GoAwayFrame(0)
            goaway.last_stream_id = args[0]
            out += goaway.serialize()
    return bytes(out)


def _describe(event: object) -> object:
    """An event as its type and every field (the data whole, a DataReceived's StreamEnded), not its repr."""
    if not dataclasses.is_dataclass(event):  # RemoteSettingsChanged, whose repr says all it holds
        return repr(event)
    return type(event).__name__, [(field.name, repr(getattr(event, field.name))) for field in dataclasses.fields(event)]


ODD_ACKS = [(9, 5), (2, 5), (0, 1), (1, -1), (1, 0), (3, 7)]  # never opened, the server's, 0, negative, nothing, any


def _acknowledge(client: h2.connection.H2Connection, stream_id: int, size: int) -> object:
    """The client acknowledges `size` bytes read on the stream: what it queues, or what it raises."""
    try:
        if isinstance(client, Engine):
            queued = client.acknowledge(stream_id, size)
            sent = client.data_to_send()
            assert queued == bool(sent), "Engine.acknowledge says whether it queued a frame"
        else:
            client.acknowledge_received_data(size, stream_id)
            sent = client.data_to_send()
    except (h2.exceptions.ProtocolError, ValueError) as e:
        return f"raised {type(e).__name__}: {e}"
    return sent


def _windows(client: h2.connection.H2Connection) -> list[object]:
    """The client's streams and connection as flow control and h2's state machines leave them."""
    def manager(m: Any) -> tuple[int, int, int]:
        return m.current_window_size, m.max_window_size, m._bytes_processed

    streams = sorted(
        (i, s.state_machine.state.name, s.closed_by, s._actual_content_length, manager(s._inbound_window_manager))
        for i, s in client.streams.items()
    )  # fmt: skip
    return [streams, client.state_machine.state.name, manager(client._inbound_flow_control_window_manager)]


def _receive_all(
    client_class: type[h2.connection.H2Connection], data: bytes, cuts: list[int], acks: list[int], window: int = 65535,
    forget: bool = False,
) -> list[object]:
    """The server's bytes read in the reads `cuts` makes; after each read, each chunk not acknowledged yet is
    acknowledged or held as `acks` says in turn (0: held, a slow reader; 1: acknowledged), and at the end the
    rest and `ODD_ACKS`. The streams' windows are `window` bytes (the connection's 65,535). With `forget`, the
    streams closed are dropped after each read, as `Engine.forget` drops them (for h2 too: what h2's walk of
    the streams would do), before the acknowledgements. Everything the client does in between is recorded."""
    client, _ = _pair(client_class)
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    client.receive_data(hyperframe.frame.SettingsFrame(0, flags=["ACK"]).serialize())  # the server's ACK
    for stream_id in (1, 3, 5, 7):  # the engine's as Http2Connection opens them (but the first: h2's, as there)
        if isinstance(client, Engine):
            client.send_request(stream_id, REQUEST, stream_id != 7)
        else:
            client.send_headers(stream_id, REQUEST, end_stream=stream_id != 7)
    client.data_to_send()
    seen: list[object] = []
    held: list[tuple[int, int]] = []
    plan = itertools.cycle(acks or [1])
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for start, end in itertools.pairwise(bounds):
        try:
            events = client.receive_data(data[start:end])
        except h2.exceptions.ProtocolError as e:
            seen.append(f"raised {type(e).__name__}: {e}")
            seen.append(client.data_to_send())
            break
        seen.append([_describe(e) for e in events])
        seen.append(client.data_to_send())
        if forget:
            for stream_id in list(client.streams):
                Engine.forget(client, stream_id)  # type: ignore[arg-type]
        held += [(e.stream_id or 0, e.flow_controlled_length or 0) for e in events if isinstance(e, h2.events.DataReceived)]
        still = []
        for chunk in held:
            if next(plan):
                seen.append(_acknowledge(client, *chunk))
            else:
                still.append(chunk)
        held = still
        seen.append(_windows(client))
    seen += [_acknowledge(client, *chunk) for chunk in held + ODD_ACKS]
    seen.append(_windows(client))
    return seen


def _data(*frames: tuple[int, int, bool]) -> list[tuple[Any, ...]]:
    return [("data", stream_id, size, end, None) for stream_id, size, end in frames]


BOUNDS = [  # windows and content-lengths filled exactly, then by one byte more (after the answers' HEADERS)
    (_data((1, 16384, False), (3, 16384, False), (1, 16384, False), (3, 16383, False), (5, 1, False)), [None] * 4, 65535),
    (_data((1, 40, False), (1, 40, False), (1, 20, False), (1, 1, False)), [None] * 4, 100),
    (_data((1, 40, False), (1, 0, True), (3, 40, False), (3, 1, False)), [40, 40, None, None], 65535),
    (_data((1, 3, True), (3, 2, True)), [3, 3, None, None], 65535),
]


@settings(max_examples=400, deadline=None)
@example((BOUNDS[0][0], True), BOUNDS[0][1], [], [0], BOUNDS[0][2], False)
@example((BOUNDS[1][0], True), BOUNDS[1][1], [], [0], BOUNDS[1][2], False)
@example((BOUNDS[2][0], True), BOUNDS[2][1], [], [0], BOUNDS[2][2], False)
@example((BOUNDS[3][0], True), BOUNDS[3][1], [], [0], BOUNDS[3][2], False)
@given(
    st.tuples(st.lists(frame_step, min_size=1, max_size=25), st.booleans())
    | st.tuples(common_steps, st.just(True)) | st.tuples(ended_steps, st.just(True)),
    st.lists(st.sampled_from([None, None, None, None, 0, 3, 40]), min_size=4, max_size=4),
    st.lists(st.integers(0, 1 << 20), max_size=8), st.lists(st.integers(0, 1), max_size=6),
    st.sampled_from([65535, 65535, 100]), st.booleans(),
)  # fmt: skip
def test_the_engines_own_reading_of_data_frames_ends_as_h2s_on_any_frames_cut_into_any_reads(
    frames: tuple[list[tuple[Any, ...]], bool], lengths: list[int | None], cuts: list[int], acks: list[int], window: int,
    forget: bool,
) -> None:
    """Every event (every field: the data, the flow-controlled length, a DataReceived's StreamEnded), every
    frame the client answers with (WINDOW_UPDATE, RST_STREAM, GOAWAY), every protocol error (a DATA frame too
    long, on stream 0, on a stream never opened or closed, beyond a window or a content-length, before the
    answer's HEADERS, with padding longer than the frame, inside a header block), every acknowledgement of
    what was read (now, later, never: slow readers whose windows run out; on streams held or dropped once
    closed) with the WINDOW_UPDATEs it sends, and
    the streams' and the connection's states, counters and windows after each read: the engine's (its own
    reading and acknowledging) and h2's, compared."""
    steps, answered = frames
    if answered:  # the streams' answers' HEADERS first (else most DATA frames come before them: an error)
        steps = [("headers", i, False, False, length, 0) for i, length in zip((1, 3, 5, 7), lengths, strict=True)] + steps
    data = _server_bytes(steps)
    ours = _receive_all(Engine, data, cuts, acks, window, forget)
    assert ours == _receive_all(h2.connection.H2Connection, data, cuts, acks, window, forget)


def test_the_engine_reads_ordinary_data_frames_itself() -> None:
    """The fast path is taken (else the comparison above proves nothing about it): h2's frame buffer is not
    asked for the DATA frames of an answered stream."""
    data = _server_bytes([("headers", 1, False, False, None, 0), ("data", 1, 10, False, None), ("data", 1, 5, True, None)])

    class Counting(h2.frame_buffer.FrameBuffer):
        frames = 0

        def __next__(self) -> hyperframe.frame.Frame:
            frame = super().__next__()
            Counting.frames += 1
            return frame

    for engine_class, expected in ((Engine, 1), (h2.connection.H2Connection, 3)):
        client, _ = _pair(engine_class)
        client.send_headers(1, REQUEST, end_stream=True)
        counting = Counting()
        counting.max_frame_size = client.incoming_buffer.max_frame_size
        client.incoming_buffer, Counting.frames = counting, 0
        events = client.receive_data(data)
        assert [type(e) for e in events] == [h2.events.ResponseReceived, h2.events.DataReceived,
                                             h2.events.DataReceived, h2.events.StreamEnded]  # fmt: skip
        assert Counting.frames == expected


def test_the_engine_reads_an_ordinary_data_frame_into_a_chunk_and_leaves_every_doubtful_one_to_h2() -> None:
    """The chunk path is taken for what can only succeed (else the comparison above proves little about it),
    and not for a DATA frame h2 refuses (beyond the content-length: h2's error and RST_STREAM)."""
    client, server = _pair(Engine)
    assert isinstance(client, Engine)
    for stream_id in (1, 3):
        client.send_request(stream_id, REQUEST, True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(b":status", b"200")])
    server.send_headers(3, [(b":status", b"200"), (b"content-length", b"2")])
    server.send_data(1, b"a line\n")
    server.send_data(1, b"", end_stream=True)
    items = client.receive(server.data_to_send())
    assert [type(i) for i in items] == [h2.events.ResponseReceived, h2.events.ResponseReceived, tuple, tuple]
    assert items[2:] == [(1, b"a line\n", 7, False), (1, b"", 0, True)]
    assert client.streams[1].closed and client.streams[1].closed_by == h2.stream.StreamClosedBy.RECV_END_STREAM
    too_long = hyperframe.frame.DataFrame(3, b"abc")
    with pytest.raises(h2.exceptions.InvalidBodyLengthError):
        client.receive(too_long.serialize())


def test_h2s_transitions_for_a_data_frame_and_its_end_are_the_ones_the_engine_does() -> None:
    """The state changes `Engine.receive` makes itself, as h2's tables have them (a change fails here)."""
    inputs, states, machine = h2.stream.StreamInputs, h2.stream.StreamState, h2.stream.H2StreamStateMachine
    transitions = h2.stream._transitions
    assert transitions[(states.OPEN, inputs.RECV_DATA)] == (machine.data_received, states.OPEN)
    assert transitions[(states.HALF_CLOSED_LOCAL, inputs.RECV_DATA)] == (machine.data_received, states.HALF_CLOSED_LOCAL)
    assert transitions[(states.OPEN, inputs.RECV_END_STREAM)] == (machine.stream_half_closed, states.HALF_CLOSED_REMOTE)
    assert transitions[(states.HALF_CLOSED_LOCAL, inputs.RECV_END_STREAM)] == (machine.stream_ended, states.CLOSED)
    connection = h2.connection.H2ConnectionStateMachine._transitions
    assert connection[(h2.connection.ConnectionState.CLIENT_OPEN, h2.connection.ConnectionInputs.RECV_DATA)] == (
        None, h2.connection.ConnectionState.CLIENT_OPEN,
    )  # fmt: skip
    assert [s for s in states if h2.stream.STREAM_OPEN[s]] == [states.OPEN, states.HALF_CLOSED_REMOTE, states.HALF_CLOSED_LOCAL]


RELIED_ON = {  # what the engine does in their place or calls: their statements' AST, hashed (h2 4.4.1, hpack 4.2.0)
    "H2Connection._receive_frame": (h2.connection.H2Connection._receive_frame, "90da6085424dc0b2"),
    "H2Connection.receive_data": (h2.connection.H2Connection.receive_data, "185a9d6ad46699a1"),
    "H2Connection._receive_data_frame": (h2.connection.H2Connection._receive_data_frame, "6b72fa6799772da3"),
    "FrameBuffer.__next__": (h2.frame_buffer.FrameBuffer.__next__, "9dc10d04d0952229"),
    "FrameBuffer._update_header_buffer": (h2.frame_buffer.FrameBuffer._update_header_buffer, "fb9a1018bab86acf"),
    "H2Stream.receive_data": (h2.stream.H2Stream.receive_data, "f74d3269cec7d741"),
    # Engine.receive's chunks and Engine.acknowledge: what they do in h2's place
    "H2StreamStateMachine.data_received": (h2.stream.H2StreamStateMachine.data_received, "efadcb5f09fb11db"),
    "H2StreamStateMachine.stream_half_closed": (h2.stream.H2StreamStateMachine.stream_half_closed, "09b149d2fedb2d07"),
    "H2StreamStateMachine.stream_ended": (h2.stream.H2StreamStateMachine.stream_ended, "a9e1b832ab454a19"),
    "H2ConnectionStateMachine.process_input": (h2.connection.H2ConnectionStateMachine.process_input, "0c2c88d3e24756d2"),
    "H2Stream._track_content_length": (h2.stream.H2Stream._track_content_length, "a45b931061d425a3"),
    "H2Stream.acknowledge_received_data": (h2.stream.H2Stream.acknowledge_received_data, "2fe6ebeb8a70f2ec"),
    "H2Connection.acknowledge_received_data": (h2.connection.H2Connection.acknowledge_received_data, "6faee55afbe4f7a9"),
    "WindowManager.window_consumed": (h2.windows.WindowManager.window_consumed, "c3ee3200d691a2c3"),
    "WindowManager.process_bytes": (h2.windows.WindowManager.process_bytes, "62f49cba33afd87e"),
    "WindowUpdateFrame.serialize_body": (hyperframe.frame.WindowUpdateFrame.serialize_body, "fc825f8fe391c18b"),
    "Frame.serialize": (hyperframe.frame.Frame.serialize, "98a4b59b4902acef"),
    # Engine.send_request (tests/unit/test_h2engine_send.py): what it does in send_headers' place or relies on
    "H2Connection.send_headers": (h2.connection.H2Connection.send_headers, "e78a493d0eba5c9f"),
    "H2Connection._begin_new_stream": (h2.connection.H2Connection._begin_new_stream, "1e4bd6928e31d2a8"),
    "H2Connection._get_or_create_stream": (h2.connection.H2Connection._get_or_create_stream, "1169ecf027b3c0bf"),
    "H2Connection._prepare_for_sending": (h2.connection.H2Connection._prepare_for_sending, "9228254a0940f2b5"),
    "H2Stream.__init__": (h2.stream.H2Stream.__init__, "0986ad6afdc7f2f6"),
    "H2Stream.send_headers": (h2.stream.H2Stream.send_headers, "92958d4260443bf8"),
    "H2Stream._build_headers_frames": (h2.stream.H2Stream._build_headers_frames, "3d1cd6b1707bffcd"),
    "H2StreamStateMachine.__init__": (h2.stream.H2StreamStateMachine.__init__, "028d1c401c946a09"),
    "H2StreamStateMachine.process_input": (h2.stream.H2StreamStateMachine.process_input, "92b5af7d65291be4"),
    "H2StreamStateMachine.request_sent": (h2.stream.H2StreamStateMachine.request_sent, "711acbbbba3afffd"),
    "authority_from_headers": (h2.utilities.authority_from_headers, "fed18a521fa2c8fd"),
    "extract_method_header": (h2.utilities.extract_method_header, "ad4c1c6b0e7972d7"),
    "Encoder.encode": (hpack.Encoder.encode, "6e2e1a9bbf3db2c6"),
    # _Stream._process_received_headers (tests/unit/test_h2engine_answers.py): h2's checks plain_answer stands for
    "H2Stream._process_received_headers": (h2.stream.H2Stream._process_received_headers, "7727d3180928248d"),
    "H2Stream.receive_headers": (h2.stream.H2Stream.receive_headers, "4cdf532c9d7f8f59"),
    "H2Stream._build_hdr_validation_flags": (h2.stream.H2Stream._build_hdr_validation_flags, "6a5546cbfc73fb7d"),
    "validate_headers": (h2.utilities.validate_headers, "82de569ca6c86d27"),
    "normalize_inbound_headers": (h2.utilities.normalize_inbound_headers, "75687bdc6fb2d01f"),
    "_reject_illegal_characters": (h2.utilities._reject_illegal_characters, "e6b229c6112ebae5"),
    "_reject_empty_header_names": (h2.utilities._reject_empty_header_names, "bdca21462822e039"),
    "_reject_te": (h2.utilities._reject_te, "0314756eee661dc1"),
    "_reject_connection_header": (h2.utilities._reject_connection_header, "401fc6ba397c5243"),
    "_reject_pseudo_header_fields": (h2.utilities._reject_pseudo_header_fields, "673f4bc56cbaff28"),
    "_check_pseudo_header_field_acceptability": (h2.utilities._check_pseudo_header_field_acceptability, "f57d38d506fd392e"),
    "_check_host_authority_header": (h2.utilities._check_host_authority_header, "f7a486ed817aa807"),
    "_check_path_header": (h2.utilities._check_path_header, "fb865ca2029b2f5a"),
    "_combine_cookie_fields": (h2.utilities._combine_cookie_fields, "b8785d28c33275da"),
}


@pytest.mark.parametrize("name", sorted(RELIED_ON))
def test_the_h2_methods_the_engine_replaces_or_calls_are_unchanged(name: str) -> None:
    function, expected = RELIED_ON[name]
    digest = hashlib.sha256(_body(function).encode()).hexdigest()[:16]
    assert digest == expected, f"h2's {name} changed: review the Engine in kubeapi/h2engine.py"
