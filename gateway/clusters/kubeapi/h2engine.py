"""h2's connection state machine, less per-frame and per-stream work h2 does for what we do not use.

- h2 (4.4.1) formats every frame it receives for its trace log (`logger.trace("Received frame: %s",
  repr(frame))` in `H2Connection._receive_frame`), evaluating the `repr` (hyperframe's flags sorted and joined,
  the body's first 20 bytes in hex) even when the logger is h2's no-op `DummyLogger`, as ours is: ~15 % of h2's
  receive work for a dispatched pod's frames, ~1.3 % of the gateway's busy samples (bench/README.md, helper
  h2rx). `Engine._receive_frame` is h2's method without that line.
- h2 walks every stream it holds for each stream opened, to check the server's stream limit (which
  `Http2Connection.has_room` enforces already) and to drop closed streams: see `open_outbound_streams`.

Everything else is h2's. These depend on h2's private methods, so h2 is pinned (constraints.txt) and
tests/unit/test_h2engine.py fails when the methods relied on are no longer those copied or described here.
"""

from __future__ import annotations

import h2.config
import h2.connection
from h2.errors import ErrorCodes
from h2.events import Event
from h2.exceptions import StreamClosedError, StreamIDTooLowError
from hyperframe.frame import Frame, RstStreamFrame

_SWEEP = 64  # h2's walk of the streams runs at least once every this many new streams


class Engine(h2.connection.H2Connection):
    """`H2Connection` without the trace log's `repr` of each received frame (our logger is h2's no-op), and
    without a walk of every stream for each stream opened while the count cannot matter."""

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config)
        self._unswept = 0

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

    def _receive_frame(self, frame: Frame) -> list[Event]:
        """h2 4.4.1's `H2Connection._receive_frame` without its first statement (the trace log line)."""
        events: list[Event]
        try:
            # I don't love using __class__ here, maybe reconsider it.
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as e:
            # If the stream was closed by RST_STREAM, we just send a RST_STREAM
            # to the remote peer. Otherwise, this is a connection error, and so
            # we will re-raise to trigger one.
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = e.error_code
                self._prepare_for_sending([f])
                events = e._events
            else:
                raise
        except StreamIDTooLowError as e:
            # The stream ID seems invalid. This may happen when the closed
            # stream has been cleaned up, or when the remote peer has opened a
            # new stream with a higher stream ID than this one, forcing it
            # closed implicitly.
            #
            # Check how the stream was closed: depending on the mechanism, it
            # is either a stream error or a connection error.
            if self._stream_is_closed_by_reset(e.stream_id):
                # Closed by RST_STREAM is a stream error.
                f = RstStreamFrame(e.stream_id)
                f.error_code = ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([f])
                events = []
            elif self._stream_is_closed_by_end(e.stream_id):
                # Closed by END_STREAM is a connection error.
                raise StreamClosedError(e.stream_id) from e
            else:
                # Closed implicitly, also a connection error, but of type
                # PROTOCOL_ERROR.
                raise
        else:
            self._prepare_for_sending(frames)

        return events
