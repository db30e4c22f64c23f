"""The HTTP/2 client's h2 engine (kubeapi/h2engine.py) overrides h2's private `_receive_frame` to drop the trace
log's `repr` of every frame. These tests fail when h2 changes that method (an upgrade must re-copy it), and
prove the engine answers every frame as h2 does, the error paths (a frame on a stream reset or ended) included."""

from __future__ import annotations

import ast
import inspect
import textwrap

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

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


def _is_trace(statement: ast.stmt) -> bool:
    call = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "trace"


def test_the_override_is_h2s_own_receive_frame_without_its_trace_line() -> None:
    theirs = ast.parse(textwrap.dedent(inspect.getsource(h2.connection.H2Connection._receive_frame))).body[0]
    assert isinstance(theirs, ast.FunctionDef)
    traces = [s for s in theirs.body if _is_trace(s)]
    assert len(traces) == 1, "h2's _receive_frame no longer logs each frame once: re-copy it in h2engine.py"
    theirs.body = [s for s in theirs.body if not _is_trace(s)]
    expected = "\n".join(ast.dump(s) for s in theirs.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)))
    assert _body(Engine._receive_frame) == expected, "h2's _receive_frame changed: re-copy it in h2engine.py"


def _pair(client_class: type[h2.connection.H2Connection]) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = client_class(h2.config.H2Configuration(client_side=True, header_encoding=None))
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
