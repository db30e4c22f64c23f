"""h2's connection state machine, less per-frame and per-stream work h2 does for what we do not use.

- h2 (4.4.1) formats every frame it receives for its trace log (`logger.trace("Received frame: %s",
  repr(frame))` in `H2Connection._receive_frame`), evaluating the `repr` (hyperframe's flags sorted and joined,
  the body's first 20 bytes in hex) even when the logger is h2's no-op `DummyLogger`, as ours is: ~15 % of h2's
  receive work for a dispatched pod's frames, ~1.3 % of the gateway's busy samples (bench/README.md, helper
  h2rx). `Engine._receive_frame` does what h2's does, without that line.
- A DATA frame (most of what a client receives: bodies, log lines, watch events) goes through h2's frame
  buffer and hyperframe's frame objects (flags set, padding and priority fields, a body copied twice) before h2
  hands its bytes to the stream: `Engine.receive_data` reads an unpadded DATA frame for a stream that may
  receive one straight from the buffer, and hands it to the same h2 stream and flow-control calls h2 makes;
  every other frame, and any DATA frame out of that case, goes through h2 as before (~30 % of the receive).
  When nothing about such a frame can fail (both windows hold it, within the answer's content-length, the
  answer's HEADERS received), `Engine.receive` also does what h2's stream would (windows, byte count, END_STREAM's
  state) and hands the frame on as a `Chunk`, not h2's two event objects through its state machines; reading
  it, `Engine.acknowledge` moves the same windows as h2's `acknowledge_received_data` and writes the rare
  WINDOW_UPDATE itself (~20 % of a pod's receive in `bench/h2_engine.py`).
- h2 walks every stream it holds for each stream opened, to check the server's stream limit (which
  `Http2Connection.has_room` enforces already) and to drop closed streams: see `open_outbound_streams`.
- h2's `send_headers` builds a request's HEADERS through layers made for any header an application passes (its
  fields converted and scanned three times, hpack's encoder, hyperframe's frame objects, the stream's state
  machine driven input by input): `Engine.send_request` writes the frame itself, its header block from
  `h2headers.BlockWriter` (no dynamic table: nothing to keep in step), and creates the stream in the state
  h2's inputs would leave it in (~8 us of ~14 us a request).
- h2 checks an answer's fields (RFC 9113 8.2.1) walking each byte of each name and value in Python: on the
  streams `send_request` opens (`_Stream`), an answer `h2headers.plain_answer` finds plainly valid is taken as
  h2's checks would take it; any other goes through them.

Everything else is h2's (docs/decisions/0036). These depend on h2's private methods, so h2 is pinned
(constraints.txt) and tests/unit/test_h2engine.py fails when the methods relied on change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
from h2.connection import ConnectionInputs, ConnectionState
from h2.errors import ErrorCodes
from h2.events import DataReceived, Event, StreamEnded
from h2.exceptions import ProtocolError, StreamClosedError, StreamIDTooLowError
from h2.stream import STREAM_OPEN, H2Stream, StreamClosedBy, StreamState
from hyperframe.exceptions import InvalidPaddingError
from hyperframe.frame import Frame, RstStreamFrame

from gateway.clusters.kubeapi.h2headers import BlockWriter, plain_answer

if TYPE_CHECKING:
    from h2._typing import Buffer
    from h2.utilities import HeaderValidationFlags
    from hpack.struct import Header

_SWEEP = 64  # h2's walk of the streams runs at least once every this many new streams
_DATA, _END_STREAM, _PADDED = 0x0, 0x1, 0x8  # RFC 9113 6.1: the DATA frame's type and flags
_RECEIVING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)  # the states in which h2 takes a DATA frame
_LAST_ID = (1 << 31) - 1  # the highest stream id a frame can carry
_HEADERS, _END_HEADERS = b"\x01", 0x4  # RFC 9113 6.2: the HEADERS frame's type and its END_HEADERS flag
_WINDOW_UPDATE = b"\0\0\x04\x08\0"  # RFC 9113 6.9: a WINDOW_UPDATE frame's header (4 bytes, type 8, no flags), less its stream
Chunk = tuple[int, bytes, int, bool]
"""A DATA frame `Engine.receive` read for a stream: stream id, data, flow-controlled length, END_STREAM. In h2's
terms (`as_events`): a `DataReceived` and, with END_STREAM, a `StreamEnded`."""


class Engine(h2.connection.H2Connection):
    """`H2Connection` without the trace log's `repr` of each received frame (our logger is h2's no-op), and
    without a walk of every stream for each stream opened while the count cannot matter."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config)
        self._unswept = 0
        self._blocks = BlockWriter()

    def send_request(self, stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        """`send_headers(stream_id, fields, end_stream=end_stream)` for a request on a new stream, with the same
        outcome: the stream h2 would hold after it (its state, windows, frame size, authority and method), a
        HEADERS frame whose block decodes to the same fields, and h2's error where h2 raises one (the server's
        stream limit reached, a stream id spent). h2 does it when the case is not the common one: the
        connection not open yet or ending, outbound normalisation or validation on, hpack's table resized by the
        server's SETTINGS (the size update goes first in hpack's next block), a block longer than a frame."""
        config, block = self.config, self._blocks.block(fields)
        if (
            self.state_machine.state is not ConnectionState.CLIENT_OPEN or not config.client_side
            or config.normalize_outbound_headers or config.validate_outbound_headers
            or self.encoder.header_table.resized or len(block) > self.max_outbound_frame_size
            or stream_id in self.streams or not (self.highest_outbound_stream_id or 0) < stream_id <= _LAST_ID or not stream_id & 1
            or self.open_outbound_streams + 1 > self.remote_settings.max_concurrent_streams
        ):  # fmt: skip
            self.send_headers(stream_id, fields, end_stream=end_stream)
            return
        stream = _Stream(
            stream_id, config=config, inbound_window_size=self.local_settings.initial_window_size,
            outbound_window_size=self.remote_settings.initial_window_size,
        )  # fmt: skip
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        machine = stream.state_machine  # as h2's SEND_HEADERS (request_sent) and SEND_END_STREAM inputs leave it
        machine.state = StreamState.HALF_CLOSED_LOCAL if end_stream else StreamState.OPEN
        machine.client = machine.headers_sent = True
        stream._authority = next((value for name, value in fields if name == b":authority"), None)
        stream.request_method = next((value for name, value in fields if name == b":method"), None)
        self.streams[stream_id] = stream
        self.highest_outbound_stream_id = stream_id
        flags = _END_HEADERS | _END_STREAM if end_stream else _END_HEADERS
        self._data_to_send += len(block).to_bytes(3, "big") + _HEADERS + bytes((flags,)) + stream_id.to_bytes(4, "big")
        self._data_to_send += block

    @property
    def open_outbound_streams(self) -> int:
        """h2's `send_headers` asks this of every new stream to enforce the server's MAX_CONCURRENT_STREAMS, and
        h2 answers by walking every stream it holds (counting the open ones, dropping the closed ones): ~100
        a busy connection, four times a pod. While h2 holds fewer streams than the limit, that count (an upper
        bound of the open ones) gives h2's check the same outcome; at the limit, and every `_SWEEP` streams
        (so closed streams the connection did not `forget` are dropped too), h2's own walk answers."""
        if self._unswept < _SWEEP and len(self.streams) < self.remote_settings.max_concurrent_streams:
            self._unswept += 1
            return len(self.streams)
        self._unswept = 0
        return super().open_outbound_streams

    def forget(self, stream_id: int) -> None:
        """A stream its reader is done with (ended, reset): dropped now if h2 holds it closed, as h2's walk in
        `_open_streams` would drop it, so h2 holds about the open streams only."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.closed:
            del self.streams[stream_id]
            self._closed_streams[stream_id] = stream.closed_by

    def receive(self, data: Buffer) -> list[Event | Chunk]:
        """h2 4.4.1's `receive_data`, except for an unpadded DATA frame on a stream in a state to receive one, with
        no header block under way, within the frame size limit: read from the buffer here. When nothing about it
        can fail (the connection open, the stream's answer's HEADERS received, both windows holding it, within
        the answer's content-length), what h2 would do to the connection and the stream is done here (the two
        windows consumed, the bytes counted, END_STREAM's state and closed-by), and the frame comes out as a
        `Chunk` in the events' place: h2's two event objects and its state machines' lookups skipped. Otherwise
        the frame goes to the calls h2's `_receive_data_frame` makes (h2's errors and events); every other frame
        is h2's. `receive_data` spells chunks as h2's events; tests/unit/test_h2engine.py compares it with h2 on
        random frames cut into random reads."""
        buffer = self.incoming_buffer
        buffer.add_data(data)
        buffer.max_frame_size = self.max_inbound_frame_size
        pending = buffer._data
        connection_window = self._inbound_flow_control_window_manager
        events: list[Event | Chunk] = []
        try:
            while len(pending) >= 9:
                length = (pending[0] << 16) | (pending[1] << 8) | pending[2]
                stream = None
                if pending[3] == _DATA and not pending[4] & _PADDED and length <= buffer.max_frame_size:
                    stream = self.streams.get(int.from_bytes(pending[5:9], "big") & 0x7FFFFFFF)
                if (
                    stream is None or len(pending) < 9 + length or buffer._headers_buffer
                    or stream.state_machine.state not in _RECEIVING
                ):  # fmt: skip
                    frame = next(buffer, None)  # h2's (an incomplete frame's header checked, as h2 checks it)
                    if frame is None:
                        break
                    events.extend(self._receive_frame(frame))
                    continue
                body, end_stream = bytes(pending[9 : 9 + length]), bool(pending[4] & _END_STREAM)
                del pending[: 9 + length]
                machine, window = stream.state_machine, stream._inbound_window_manager
                received, expected = stream._actual_content_length + length, stream._expected_content_length
                if (
                    self.state_machine.state is ConnectionState.CLIENT_OPEN and machine.headers_received
                    and connection_window.current_window_size >= length and window.current_window_size >= length
                    and (expected is None or (received == expected if end_stream else received <= expected))
                ):  # fmt: skip
                    connection_window.current_window_size -= length  # h2's window_consumed, which cannot fail here
                    window.current_window_size -= length
                    stream._actual_content_length = received
                    if end_stream:  # h2's RECV_END_STREAM: OPEN -> HALF_CLOSED_REMOTE, HALF_CLOSED_LOCAL -> CLOSED
                        if machine.state is StreamState.OPEN:
                            machine.state = StreamState.HALF_CLOSED_REMOTE
                        else:
                            machine.state, machine.stream_closed_by = StreamState.CLOSED, StreamClosedBy.RECV_END_STREAM
                    events.append((stream.stream_id, body, length, end_stream))
                    continue
                events.extend(self.state_machine.process_input(ConnectionInputs.RECV_DATA))
                connection_window.window_consumed(length)
                events.extend(stream.receive_data(body, end_stream, length)[1])  # no frames to send: h2's neither
        except InvalidPaddingError as e:  # the connection ends on these, as in h2's receive_data
            self._terminate_connection(ErrorCodes.PROTOCOL_ERROR)
            msg = "Received frame with invalid padding."
            raise ProtocolError(msg) from e
        except ProtocolError as e:
            self._terminate_connection(e.error_code)
            raise
        return events

    def receive_data(self, data: Buffer) -> list[Event]:
        """h2's `receive_data`: `receive`, its chunks spelt as the events h2 makes of a DATA frame."""
        events: list[Event] = []
        for item in self.receive(data):
            if isinstance(item, tuple):
                events += as_events(item)
            else:
                events.append(item)
        return events

    def acknowledge(self, stream_id: int, size: int) -> bool:
        """h2's `acknowledge_received_data(size, stream_id)`, with its outcome (the connection's and the stream's
        windows, a WINDOW_UPDATE for either when h2's WindowManager hands back an increment, written here
        as hyperframe writes it) for a stream h2 holds, or one of ours it dropped closed (the connection's window
        only, as h2 does: the last chunk of most answers is read after its END_STREAM, when the connection has
        `forget` it); else h2's own (its errors). True if a frame was queued. h2's call logs twice, looks the
        stream up through a fallback for ids it no longer holds, builds frame objects and serialises them, for
        what is a few counters on nearly every call (h2 sends a WINDOW_UPDATE once half a window was read)."""
        stream = self.streams.get(stream_id)
        if size < 0 or (stream is None and not (
            0 < stream_id <= (self.highest_outbound_stream_id or 0) and stream_id % 2 == int(self.config.client_side)
        )):  # fmt: skip
            before = len(self._data_to_send)
            self.acknowledge_received_data(size, stream_id)
            return len(self._data_to_send) > before
        queued = False
        if increment := self._inbound_flow_control_window_manager.process_bytes(size):
            self._data_to_send += _WINDOW_UPDATE + b"\0\0\0\0" + increment.to_bytes(4, "big")
            queued = True
        if stream is not None and STREAM_OPEN[stream.state_machine.state] and (
            increment := stream._inbound_window_manager.process_bytes(size)
        ):
            self._data_to_send += _WINDOW_UPDATE + stream_id.to_bytes(4, "big") + increment.to_bytes(4, "big")
            queued = True
        return queued

    def _receive_frame(self, frame: Frame) -> list[Event]:
        """What h2 4.4.1's `H2Connection._receive_frame` does, less its trace line: the frame goes to h2's
        handler for its type. A frame for a stream h2 no longer holds open is answered as RFC 9113 5.1 and
        5.4 ask, and as h2 answers it: on a stream we reset, with RST_STREAM (a stream error, the frame's events
        kept); on a stream that ended, or that a later stream closed implicitly, the connection ends
        (re-raised to `receive_data`). tests/unit/test_h2engine.py compares both on every kind of frame."""
        events: list[Event]
        try:
            frames, events = self._frame_dispatch_table[type(frame)](frame)
        except StreamClosedError as closed:
            if not self._stream_is_closed_by_reset(closed.stream_id):
                raise
            self._reset(closed.stream_id, closed.error_code)
            events = closed._events
            return events
        except StreamIDTooLowError as too_low:
            if self._stream_is_closed_by_reset(too_low.stream_id):
                self._reset(too_low.stream_id, ErrorCodes.STREAM_CLOSED)
                return []
            if self._stream_is_closed_by_end(too_low.stream_id):
                raise StreamClosedError(too_low.stream_id) from too_low
            raise
        self._prepare_for_sending(frames)
        return events

    def _reset(self, stream_id: int, code: ErrorCodes | int) -> None:
        reset = RstStreamFrame(stream_id)
        reset.error_code = code
        self._prepare_for_sending([reset])


class _Stream(H2Stream):
    """h2's stream (the ones `send_request` opens), whose answer's fields skip h2's inbound checks when they are
    plainly what those checks pass unchanged (`h2headers.plain_answer`: a few regular expressions); any other
    block (trailers, an odd field, decoding to text) goes through h2's checks as before."""

    def _process_received_headers(
        self, headers: Iterable[Header], header_validation_flags: HeaderValidationFlags, header_encoding: bool | str | None
    ) -> list[Header]:
        fields, flags = list(headers), header_validation_flags
        if flags.is_response_header and not header_encoding and plain_answer(fields):  # (trailers are not)
            return fields  # what h2's checks (and its normalisation, were either off) would return
        return super()._process_received_headers(fields, header_validation_flags, header_encoding)


def as_events(chunk: Chunk) -> list[Event]:
    """The events h2 makes of the DATA frame `chunk` stands for (h2's `data_received` and `stream_ended`)."""
    stream_id, data, length, ended = chunk
    received = DataReceived(stream_id=stream_id)
    received.data, received.flow_controlled_length = data, length
    if not ended:
        return [received]
    received.stream_ended = StreamEnded(stream_id=stream_id)
    return [received, received.stream_ended]
