"""HTTP/2 connections to one API server: every request (but exec's WebSocket) is a stream on a shared connection.

A followed log or a watch holds its request open for hours. Over HTTP/1.1 that is a TLS connection (~55 KiB of
OpenSSL and aiohttp state, one descriptor) each, and concurrent creates and deletes open (and handshake) more;
over HTTP/2 each is one stream (a few KiB) on a connection shared with up to 99 others
(docs/decisions/0030-http2-log-streams.md). The protocol engine is h2 (python-hyper, sans-I/O); this module is
the I/O around it: TLS with ALPN on the endpoint's own context, a stream per request (its body sent as the
server's windows allow), another connection when the server's MAX_CONCURRENT_STREAMS is reached (as Go's
transport does; one connection attempt at a time, its outcome shared by every request waiting for it), and
flow control that bounds memory under a slow reader: a stream's DATA is acknowledged (WINDOW_UPDATE) only when
the reader takes it, so at most one window (STREAM_WINDOW) waits per stream. A connection nothing was read from
for a while is PINGed and dropped when the PING goes unanswered (client-go's health check).

Headers are built here, from names and values the transport controls, so h2's outbound normalisation and
validation are off; the engine writes a request's HEADERS frame itself, its header block without HPACK's
dynamic table (`Engine.send_request`, `h2headers`: decision 0036), and HPACK strings go out without Huffman
coding; `authorization` is never indexed, as h2's normalisation would have made it. On receive, the engine hands
the common DATA frame over as a `Chunk` rather than h2's events, and acknowledges what was read itself
(`Engine.receive`, `Engine.acknowledge`: the same windows, the same WINDOW_UPDATEs; decision 0036).

Failures come out as Python exceptions the transport maps to the client's error tree: `NotConnected`
(nothing was sent), `Http2Refused` (the server chose HTTP/1.1 in ALPN: use it), `StreamLost` (a RST_STREAM,
a GOAWAY that left the stream out, an unanswered PING, or the connection lost), `TimeoutError` (no byte within the deadline).
Credentials, 401 refresh and retries stay in transport.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import urlsplit

import h2.config
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack

from gateway.clusters.kubeapi.h2engine import Engine
from gateway.clusters.kubeapi.http2_stream import Http2Stream, StreamLost
from gateway.clusters.kubeapi.timeouts import HTTP2_PING_SECONDS, HTTP2_READ_IDLE_SECONDS
from gateway.credentials import keepalive
from gateway.credentials.base import Endpoint

STREAM_WINDOW = 1 << 16  # bytes a stream may have unread: the per-log memory bound under a slow reader
MAX_STREAMS = 100  # per connection, even when a server allows more (kube-apiserver allows 100)
CONNECTION_WINDOW = 2 * MAX_STREAMS * STREAM_WINDOW  # never the bottleneck: slow readers do not stall others
IDLE_SECONDS = 30.0  # a connection without streams for this long is closed
ERROR_BODY_BYTES = 64 << 10  # an error answer's Status body is read up to this
LAST_STREAM_ID = (1 << 31) - 1  # a connection whose stream ids are spent takes no new stream (RFC 9113 5.1.1)
_DEFAULT_WINDOW = 65535  # RFC 9113's initial connection window
_SECRET = frozenset({b"authorization", b"proxy-authorization"})  # never in HPACK's tables (RFC 7541 7.1.3)
# h2's own normalisation (lower-case names, stripped values, connection headers dropped, authorization never
# indexed) and validation (pseudo-headers, te, connection, host) guard headers an application passes through;
# ours are built in `Http2Pool.request` from lower-case constants, the path, and credential values.


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding (RFC 7541 5.2 leaves it to the encoder). hpack's Huffman coder is pure
    Python, ~0.2 µs a byte: a 1 KiB bearer token (never indexed, so sent whole every time) cost ~220 µs a
    request against ~3 µs plain, for ~25 % fewer bytes on the wire (bench/README.md, helper h2all). It writes
    only the blocks h2 writes itself (a connection's first request, the first after the server resized the
    table); the engine writes the others without the dynamic table (`Engine.send_request`, `h2headers`)."""

    def encode(self, headers: Any, huffman: bool = False) -> bytes:
        return super().encode(headers, huffman=False)


class Http2Refused(Exception):
    """The server chose HTTP/1.1 (or nothing) in ALPN: this endpoint's streams use HTTP/1.1."""


class NotConnected(ConnectionError):
    """No connection could be made (refused, TLS, timeout): the request was certainly not sent."""


class Http2Pool:
    """The HTTP/2 connections to one endpoint; `request` opens a stream on one with room, or on a new one."""

    def __init__(
        self, endpoint: Endpoint, *, connect_timeout: float, read_idle: float = HTTP2_READ_IDLE_SECONDS,
        ping_timeout: float = HTTP2_PING_SECONDS,
    ) -> None:  # fmt: skip
        parts = urlsplit(endpoint.server)
        self.endpoint = endpoint
        self.host = parts.hostname or ""
        self.port = parts.port or 443
        self.authority = parts.netloc.encode()
        self._server_hostname = endpoint.tls_server_name or self.host
        self._context = endpoint.ssl_context()
        self._context.set_alpn_protocols(["h2", "http/1.1"])
        self._connect_timeout = connect_timeout
        self._health = (read_idle, ping_timeout)
        self._connections: list[Http2Connection] = []
        self._connecting: asyncio.Task[Http2Connection] | None = None  # the one connection attempt under way
        self._closed = False
        self.handshakes = 0  # TLS connections opened (bench and tests count them)
        self.refused = False  # the server chose HTTP/1.1 in ALPN
        self.negotiated = False  # the server chose h2 in ALPN at least once

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def request(
        self, path: str, headers: Iterable[tuple[str, str]], *, method: str = "GET", body: bytes | None = None
    ) -> Http2Stream:
        """`method` of `path` (query included) on a connection with room, `body` sent as the windows allow; the
        stream's answer is not awaited. `headers` are the transport's own (credentials, constants)."""
        fields: list[tuple[bytes, bytes]] = [
            (b":method", method.encode()), (b":scheme", b"https"), (b":authority", self.authority),
            hpack.NeverIndexedHeaderTuple(b":path", path.encode()),  # one-off: not worth a table entry
        ]  # fmt: skip
        for name, value in headers:
            key = name.lower().encode()
            fields.append(hpack.NeverIndexedHeaderTuple(key, value.encode()) if key in _SECRET else (key, value.encode()))
        connection = self._with_room() or await self._connection()
        return connection.open_stream(fields, body)

    def _with_room(self) -> Http2Connection | None:
        return next((c for c in self._connections if c.has_room()), None)

    async def _connection(self) -> Http2Connection:
        """A connection with room, made when none has: one attempt at a time, whose outcome every request
        waiting for it shares (a burst of 150 logs makes 2 connections, not 150; an unreachable server is
        tried once for all of them, not once per request in turn)."""
        while (connection := self._with_room()) is None:
            if self.refused:
                raise Http2Refused(f"{self.host}:{self.port} chose HTTP/1.1 in ALPN")
            if self._closed:
                raise NotConnected("the connections to this endpoint were closed")
            attempt = self._connecting
            # A finished attempt whose done callback has not run yet is no attempt under way: requests that ran
            # first in this loop turn may have filled its connection. Awaiting it again returns at once without
            # yielding, and the loop spun here for ever (a burst of creates, bench/README.md issue 16).
            if attempt is None or attempt.done():
                attempt = self._connecting = asyncio.get_running_loop().create_task(self._connect())
                attempt.add_done_callback(self._connect_done)
            await asyncio.shield(attempt)
        return connection

    def _connect_done(self, task: asyncio.Task[Http2Connection]) -> None:
        if self._connecting is task:  # not a newer attempt, started before this callback ran
            self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here: a failure nobody waits for any more is no "never retrieved"

    async def _connect(self) -> Http2Connection:
        loop = asyncio.get_running_loop()
        transport: asyncio.Transport | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                self.handshakes += 1
                transport, connection = await loop.create_connection(
                    lambda: Http2Connection(self._connections, *self._health), self.host, self.port, ssl=self._context,
                    server_hostname=self._server_hostname,
                )  # fmt: skip
                ssl_object = transport.get_extra_info("ssl_object")
                if (ssl_object.selected_alpn_protocol() if ssl_object is not None else None) != "h2":
                    transport.close()
                    self.refused = True
                    raise Http2Refused(f"{self.host}:{self.port} chose HTTP/1.1 in ALPN")
                self.negotiated = True
                if (sock := transport.get_extra_info("socket")) is not None:
                    keepalive.enable(sock)
                await connection.settled  # the server's SETTINGS: its MAX_CONCURRENT_STREAMS
        except (OSError, ssl.SSLError, TimeoutError) as e:
            if transport is not None:
                transport.abort()  # connected, but no SETTINGS in time
            raise NotConnected(f"cannot connect to {self.host}:{self.port}: {str(e) or type(e).__name__}") from e
        except asyncio.CancelledError:
            if transport is not None:
                transport.abort()
            raise
        if self._closed:
            connection.close()
            raise NotConnected("the connections to this endpoint were closed")
        self._connections.append(connection)
        return connection

    def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()


class Http2Connection(asyncio.Protocol):
    """One TLS connection speaking HTTP/2 (h2's state machine); its streams' data goes to their `Http2Stream`."""

    def __init__(
        self, pool: list[Http2Connection], read_idle: float = HTTP2_READ_IDLE_SECONDS, ping_timeout: float = HTTP2_PING_SECONDS
    ) -> None:
        self._pool = pool
        self._read_idle, self._ping_timeout = read_idle, ping_timeout
        self._last_read = 0.0
        self._health: asyncio.TimerHandle | None = None  # the next read-idle check, or the PING's deadline
        self.conn = Engine(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
        ))  # fmt: skip
        self.conn.encoder = _PlainEncoder()
        self.streams: dict[int, Http2Stream] = {}
        self._sending: dict[int, memoryview] = {}  # request bodies waiting for the server's windows
        self.settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.draining = False  # a GOAWAY came: no new streams here
        self._idle: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()  # its streams' too: get_running_loop() is a getpid() call on 3.11
        self._flush_due = False  # a write of what h2 queued is scheduled for the end of this loop turn

    def has_room(self) -> bool:
        if self.transport is None or self.draining or self.transport.is_closing():
            return False
        if self.conn.highest_outbound_stream_id >= LAST_STREAM_ID - 2:
            self.draining = True  # ids spent: the streams open run on, new ones go to a new connection
            return False
        limit = min(self.conn.remote_settings.max_concurrent_streams, MAX_STREAMS)
        return len(self.streams) < limit  # ours, not h2's open_outbound_streams: that one walks every stream

    def open_stream(self, fields: list[tuple[bytes, bytes]], body: bytes | None = None) -> Http2Stream:
        """HEADERS (and the body's DATA, as far as the windows allow) in one write; the rest on WINDOW_UPDATE."""
        stream_id = self.conn.get_next_available_stream_id()
        try:
            self.conn.send_request(stream_id, fields, end_stream=not body)
        except h2.exceptions.H2Error as e:  # the server lowered its stream limit, or the connection is ending
            self.draining = True
            raise StreamLost(f"no stream could be opened: {e}") from e
        stream = self.streams[stream_id] = Http2Stream(self, stream_id)
        if body:
            self._sending[stream_id] = memoryview(body)
            self._send_body(stream_id)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.send()
        return stream

    def _send_body(self, stream_id: int) -> None:
        """As much of the stream's body as the stream's and the connection's windows allow."""
        rest = self._sending[stream_id]
        while rest:
            size = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size, len(rest))
            if size <= 0:
                break
            self.conn.send_data(stream_id, rest[:size].tobytes(), end_stream=size == len(rest))
            rest = rest[size:]
        if rest:
            self._sending[stream_id] = rest
        else:
            del self._sending[stream_id]

    def _resume_sending(self) -> None:
        for stream_id in list(self._sending):
            self._send_body(stream_id)

    # --- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are no asyncio.Transport subclass
        self.conn.initiate_connection()
        codes = h2.settings.SettingCodes
        self.conn.update_settings({codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW, codes.ENABLE_PUSH: 0})
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self.send()
        self._last_read = asyncio.get_running_loop().time()
        self._health = asyncio.get_running_loop().call_later(self._read_idle, self._check_health)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()  # the loop kept: get_running_loop() is a getpid() call on 3.11
        try:
            events = self.conn.receive(data)
        except h2.exceptions.ProtocolError as e:
            self._fail(StreamLost(f"HTTP/2 protocol error from the server: {e}"))
            self.flush()
            self.abort()
            return
        for event in events:
            if isinstance(event, tuple):  # a DATA frame the engine read itself: h2's DataReceived (+ StreamEnded)
                stream_id, chunk, size, ended = event
                self._received(stream_id, chunk, size)
                if ended:
                    self._ended(stream_id)
            else:
                self._event(event)
        self.send()

    def _received(self, stream_id: int, data: bytes, size: int) -> None:
        if (stream := self.streams.get(stream_id)) is not None:
            stream.received(data, size)
        else:  # a stream we gave up on: keep the connection's window open
            self.acknowledge(stream_id, size)

    def _ended(self, stream_id: int) -> None:
        if (stream := self.streams.get(stream_id)) is None:
            return
        stream.ended()
        if self._sending.pop(stream_id, None) is not None:  # answered before the whole body went
            self._reset(stream_id)  # RFC 9113 8.1: stop sending; the answer stands
        self._forget(stream_id)

    def _event(self, event: h2.events.Event) -> None:
        """One event of h2's (the engine's own reading of DATA frames aside); the frequent ones first."""
        if isinstance(event, h2.events.DataReceived):
            self._received(event.stream_id or 0, event.data or b"", event.flow_controlled_length or 0)
            return
        if isinstance(event, h2.events.StreamEnded):
            self._ended(event.stream_id or 0)
            return
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.ResponseReceived) and stream is not None:
            stream.answered(event.headers or [])
        elif isinstance(event, h2.events.StreamReset) and stream is not None:
            stream.failed(StreamLost(f"stream reset by the server ({_code(event.error_code)})"))
            self._forget(stream.stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged) and not self.settled.done():
            self.settled.set_result(None)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged) and self._sending:
            self._resume_sending()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._goaway(event)
        elif isinstance(event, h2.events.PingAckReceived):
            self._ping_answered()

    def _goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """No new streams here; those the server never processed fail now (nothing was done with them),
        the others run until they end or the connection goes."""
        self.draining = True
        last = event.last_stream_id or 0
        why = f"GOAWAY from the server ({_code(event.error_code)})"
        for stream_id in [s for s in self.streams if s > last]:
            self._sending.pop(stream_id, None)
            self.streams.pop(stream_id).failed(StreamLost(why))
        if not self.streams:
            self.close()

    # --- health: client-go's HTTP/2 health check ------------------------------------------------------

    def _check_health(self) -> None:
        """Nothing read for `read_idle`: a PING, which a live server answers at once. Requests and streams on a
        dead connection (a peer gone without FIN or RST, a NAT entry forgotten) would otherwise wait out their
        own deadlines, and new requests would keep coming to it; TCP keepalive does not probe a connection with
        unacknowledged data."""
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last_read
        if idle < self._read_idle:
            self._health = loop.call_later(self._read_idle - idle, self._check_health)
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.conn.ping(b"podgate!")
        self.send()
        self._health = loop.call_later(self._ping_timeout, self._ping_unanswered)

    def _ping_answered(self) -> None:
        if self._health is not None:
            self._health.cancel()
        self._health = asyncio.get_running_loop().call_later(self._read_idle, self._check_health)

    def _ping_unanswered(self) -> None:
        self._health = None
        self.draining = True
        self._fail(StreamLost(f"no answer to an HTTP/2 PING in {self._ping_timeout:g}s: the connection is dead"))
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._health is not None:
            self._health.cancel()
            self._health = None
        self.draining = True
        if self in self._pool:
            self._pool.remove(self)
        if not self.settled.done():
            self.settled.set_exception(exc or ConnectionResetError("connection closed before the server's SETTINGS"))
        self._fail(StreamLost(f"connection lost: {exc}" if exc else "connection closed by the server"))
        if self._idle is not None:
            self._idle.cancel()

    def pause_writing(self) -> None:
        pass  # only HEADERS, WINDOW_UPDATE and RST_STREAM go out: nothing worth holding back

    def resume_writing(self) -> None:
        pass

    # --- for the streams ---------------------------------------------------------------------------

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The reader took `size` bytes: let the server send as much again (h2 batches the WINDOW_UPDATEs)."""
        if not size:
            return
        try:
            queued = self.conn.acknowledge(stream_id, size)
        except (h2.exceptions.StreamClosedError, KeyError):
            return
        if queued:  # nothing to write otherwise: h2 queues a WINDOW_UPDATE once half a window was read
            self.send()

    def cancel(self, stream_id: int) -> None:
        """The reader stopped before the end: RST_STREAM(CANCEL), and the stream's slot is free."""
        if self.streams.pop(stream_id, None) is None:
            return
        self._reset(stream_id)
        self.send()
        self._forget(stream_id)

    def _reset(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)

    def send(self) -> None:
        """Writes what h2 has queued once this loop turn's callbacks have run: the HEADERS of every stream
        opened and the WINDOW_UPDATEs of every read in that turn go in one TLS record and one system call, not
        one each (a write was ~5 % of a dispatched pod's busy samples: uvloop's write and ssl's encryption)."""
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_due = False
        if self.transport is not None and not self.transport.is_closing() and (data := self.conn.data_to_send()):
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.conn.close_connection()
            self.flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self._sending.pop(stream_id, None)
        self.conn.forget(stream_id)
        if self.streams:
            return
        if self.draining:
            self.close()
        elif self._idle is None:
            self._idle = self.loop.call_later(IDLE_SECONDS, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle = None
        if not self.streams:
            self.draining = True
            self.close()

    def _fail(self, error: StreamLost) -> None:
        self._sending.clear()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.failed(error)


def _code(code: Any) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return str(code)
