"""One HTTP/2 request's answer as its reader sees it: status and headers, then the body chunk by chunk, each chunk
acknowledged to the server (WINDOW_UPDATE) only when read, so a slow reader holds at most one window. Small on
purpose: there is one per followed log and per watch. The connection (http2.py) feeds it; it calls back only to
acknowledge what was read and to cancel (RST_STREAM) a stream given up.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class StreamLost(ConnectionError):
    """The stream ended without its END_STREAM: reset by the server, refused by a GOAWAY, connection lost."""


class Carrier(Protocol):
    """What a stream needs of its connection."""

    loop: asyncio.AbstractEventLoop

    def acknowledge(self, stream_id: int, size: int) -> None: ...

    def cancel(self, stream_id: int) -> None: ...


class Http2Stream:
    """One request's answer: its status and headers, then its body read chunk by chunk. Small on purpose
    (there is one per followed log): the chunks waiting to be read, and a future only while someone waits."""

    __slots__ = ("_chunks", "_connection", "_done", "_error", "_waiter", "headers", "status", "stream_id")

    def __init__(self, connection: Carrier, stream_id: int) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[tuple[bytes, int]] = []  # (data, its flow-controlled length), not yet acknowledged
        self._done = False  # END_STREAM came
        self._error: StreamLost | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def response(self, inactivity: float | None) -> int:
        """The answer's status, once its HEADERS come."""
        while not self.status:
            await self._wait(inactivity)
        return self.status

    @property
    def unread(self) -> int:
        """Bytes received and not yet read: never more than STREAM_WINDOW, however slow the reader."""
        return sum(size for _, size in self._chunks)

    def header(self, name: bytes) -> str | None:
        return next((v.decode("latin-1") for k, v in self.headers if k == name), None)

    async def read(self, inactivity: float | None) -> bytes:
        """The next chunk of the body (b"" at its end); its bytes are acknowledged to the server now."""
        while not self._chunks:
            if self._done:
                return b""
            await self._wait(inactivity)
        data, size = self._chunks.pop(0)
        self._connection.acknowledge(self.stream_id, size)
        return data

    async def body(self, inactivity: float | None) -> bytes:
        """The whole body, once END_STREAM came. What arrives is acknowledged at once (one call for all that
        came together), so a body longer than one window keeps flowing."""
        parts: list[bytes] = []
        while True:
            if self._chunks:
                parts += [data for data, _ in self._chunks]
                self._connection.acknowledge(self.stream_id, sum(size for _, size in self._chunks))
                self._chunks.clear()
            if self._done:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            await self._wait(inactivity)

    async def read_all(self, limit: int, inactivity: float | None) -> bytes:
        body = bytearray()
        while len(body) < limit and (chunk := await self.read(inactivity)):
            body += chunk
        return bytes(body[:limit])

    def release(self) -> None:
        """Done reading: an unfinished stream is cancelled (RST_STREAM), freeing its slot on the connection."""
        if not self._done and self._error is None:
            self._error = StreamLost("stream released by the reader")
            self._connection.cancel(self.stream_id)
        self._chunks.clear()

    async def _wait(self, inactivity: float | None) -> None:
        """Until the connection feeds the stream; TimeoutError after `inactivity` seconds. The deadline is a bare
        timer on the waiter, not an `asyncio.timeout` (its context manager and rescheduling were ~1 % of a
        dispatched pod's busy samples: a wait per chunk of every log and watch)."""
        if self._error is not None:
            raise self._error
        loop = self._connection.loop
        waiter = self._waiter = loop.create_future()
        timer = None if inactivity is None else loop.call_later(inactivity, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- from the connection -----------------------------------------------------------------------

    def answered(self, headers: list[tuple[bytes, bytes]]) -> None:
        status = next((v for k, v in headers if k == b":status"), b"")
        if status.startswith(b"1"):
            return  # an informational answer (100 Continue): the real one follows
        # A status that is not three digits is the server's fault, not a reason to fail the connection's reader.
        self.status = int(status) if len(status) == 3 and status.isdigit() and status[:1] != b"0" else 502
        self.headers = [(k, v) for k, v in headers if not k.startswith(b":")]
        self._wake()

    def received(self, data: bytes, size: int) -> None:
        self._chunks.append((data, size))
        self._wake()

    def ended(self) -> None:
        self._done = True
        self._wake()

    def failed(self, error: StreamLost) -> None:
        if self._error is None and not self._done:
            self._error = error
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
