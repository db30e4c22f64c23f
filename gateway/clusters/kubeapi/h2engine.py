"""h2's connection state machine, less the per-frame work it does for a trace log nobody reads.

h2 (4.4.1) formats every frame it receives for its trace log (`logger.trace("Received frame: %s", repr(frame))`
in `H2Connection._receive_frame`), evaluating the `repr` (hyperframe's flags sorted and joined, the first 20
bytes of the body in hex) even when the logger is h2's no-op `DummyLogger`, as ours is: ~14 % of h2's receive
work for a dispatched pod's frames (`/tmp`-free microbenchmark in bench/README.md, helper h2rx) and ~1.3 % of
the gateway's busy samples. `Engine._receive_frame` is h2's own method without that line; everything else is
h2's. The override depends on h2's private method, so h2 is pinned (constraints.txt) and
tests/unit/test_h2engine.py fails when h2's method is no longer the one copied here.
"""

from __future__ import annotations

import h2.connection
from h2.errors import ErrorCodes
from h2.events import Event
from h2.exceptions import StreamClosedError, StreamIDTooLowError
from hyperframe.frame import Frame, RstStreamFrame


class Engine(h2.connection.H2Connection):
    """`H2Connection` without the trace log's `repr` of each received frame (our logger is h2's no-op)."""

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
