"""HTTP/2 for the simulated API server, on the same TLS port as HTTP/1.1, chosen by ALPN.

kube-apiserver speaks HTTP/2 to every client that offers it (client-go, kubectl), with at most 100
concurrent streams a connection. Each stream's request runs the API server's pipeline (apiserver.py) as an
`Http2Exchange`, in a task of its own, and its answer goes out as the stream's HEADERS and DATA frames:
the same authentication, RBAC, request log and faults as on HTTP/1.1, because it is the same pipeline.
(Until Dec 5 each stream was written as HTTP/1.1 into aiohttp and its answer parsed back with h11: a third
of the simulator's CPU a pod.) A stream reset by the client, or a connection lost, cancels its task, as
aiohttp cancels its handlers (`handler_cancellation`).

Flow control is the client's: a stream's DATA waits for the client's window (a streamed answer's writer
waits while its stream holds unsent bytes or the TLS transport is paused, as aiohttp's writer waits on a full
socket buffer), and request bodies are acknowledged as they arrive, up to `MAX_BODY` (then 413).

What the handlers write in one turn of the event loop leaves in one TLS write (`send_soon`): a followed
log's headers and line, the lines of many streams, are frames of one record, not a record and a system
call each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping
from yarl import URL

from gateway.sim.errors import RequestEntityTooLarge, SimError
from gateway.sim.exchange import MAX_BODY, Answer, Exchange, Reply, Stream, media_type
from gateway.sim.jsonwire import dumps

log = logging.getLogger(__name__)

MAX_CONCURRENT_STREAMS = 100  # kube-apiserver's since the fix of CVE-2023-44487
ALPN_HTTP2 = ["h2", "http/1.1"]
ALPN_HTTP1 = ["http/1.1"]

Http1Factory = Callable[[], asyncio.Protocol]
Pipeline = Callable[[Exchange], Awaitable[Answer]]


def offer(context: ssl.SSLContext, http2: bool) -> ssl.SSLContext:
    """The server's ALPN offer: h2 first (ALPN picks the server's preference among the client's), or HTTP/1.1 only."""
    context.set_alpn_protocols(ALPN_HTTP2 if http2 else ALPN_HTTP1)
    return context


class Connections:
    """One server's HTTP/2 connections open now, and how many it accepted in all (tests count them)."""

    def __init__(self) -> None:
        self.open: set[Http2Connection] = set()
        self.accepted = 0
        self.handlers = 0  # streams whose pipeline task has not ended yet


class AlpnSwitch(asyncio.Protocol):
    """A new TLS connection (connection_made comes after the handshake) goes to the HTTP/2 server when ALPN
    chose h2, to aiohttp's HTTP/1.1 handler otherwise; the switch then steps out of the way."""

    def __init__(self, http1: Http1Factory, pipeline: Pipeline, connections: Connections) -> None:
        self._http1 = http1
        self._pipeline = pipeline
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if chosen == "h2":
            protocol: asyncio.Protocol = Http2Connection(self._pipeline, self._connections)
        else:
            protocol = self._http1()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding (RFC 7541 5.2 leaves it to the encoder; clients decode both): hpack's
    Huffman coder is pure Python, ~0.2 us a byte of every header value sent."""

    def encode(self, headers: Any, huffman: bool = False) -> bytes:
        return super().encode(headers, huffman=False)


class Http2Connection(asyncio.Protocol):
    """One client's HTTP/2 connection; each stream is an `Http2Exchange` served by the pipeline in a task."""

    def __init__(self, pipeline: Pipeline, connections: Connections) -> None:
        self.pipeline = pipeline
        self.connections = connections
        # What the client sends is validated and normalised by h2 (a client's malformed headers are refused as
        # kube-apiserver refuses them); what we send is built here from lower-case names and checked values.
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
        ))  # fmt: skip
        self.conn.encoder = _PlainEncoder()
        self.streams: dict[int, Http2Exchange] = {}
        self.transport: asyncio.Transport | None = None
        self.paused = False  # the TLS transport's buffer is full: streamed answers wait
        self._send_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are no asyncio.Transport subclass
        self.connections.open.add(self)
        self.connections.accepted += 1
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS})
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.open.discard(self)
        self.transport = None
        streams, self.streams = list(self.streams.values()), {}
        for stream in streams:
            stream.lost()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.send()
            self.abort()
            return
        for event in events:
            self._event(event)
        self.send()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.streams[event.stream_id] = Http2Exchange(self, event.stream_id, event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.received(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded):  # the request is complete (a GET's END_STREAM on HEADERS)
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.start()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self.streams.pop(event.stream_id, None)) is not None:
                stream.lost()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for stream in list(self.streams.values()):
                if stream.pending:
                    self.flush(stream)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close()

    def send(self) -> None:
        if self.transport is not None and (data := self.conn.data_to_send()):
            self.transport.write(data)

    def send_soon(self) -> None:
        """Sends what the connection holds at the end of this turn of the loop, with whatever else is written in it."""
        if not self._send_pending:
            self._send_pending = True
            asyncio.get_running_loop().call_soon(self._send_now)

    def _send_now(self) -> None:
        self._send_pending = False
        self.send()

    def flush(self, stream: Http2Exchange) -> None:
        """As much of the stream's answer as the client's windows allow; the rest waits for a WINDOW_UPDATE."""
        try:
            while stream.pending:
                window = self.conn.local_flow_control_window(stream.stream_id)
                size = min(window, self.conn.max_outbound_frame_size, len(stream.pending))
                if size <= 0:
                    break
                end = stream.complete and size == len(stream.pending)
                self.conn.send_data(stream.stream_id, bytes(stream.pending[:size]), end_stream=end)
                del stream.pending[:size]
                if end:
                    self.streams.pop(stream.stream_id, None)
        except h2.exceptions.StreamClosedError:
            self.streams.pop(stream.stream_id, None)
            stream.lost()
        stream.wake()
        self.send_soon()

    def reset(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self.send_soon()

    def goaway(self) -> None:
        """GOAWAY (no error, the last stream accepted), then the connection closes: its open streams are cut,
        as when an API server shuts down."""
        self.conn.close_connection(last_stream_id=self.conn.highest_inbound_stream_id)
        self.send()
        self.close()

    def close(self) -> None:
        """Closes after sending what the connection still holds (the transport sends what it buffers)."""
        self.send()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            self.flush(stream)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


class Http2Exchange:
    """One stream: the pipeline's `Exchange` (the request) and, once `stream` is called, its `Stream`."""

    status = 200  # a streamed answer's (a whole one is a `Reply` with its own)

    def __init__(self, connection: Http2Connection, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self._raw_headers = headers
        self.body = bytearray()
        self.pending = bytearray()  # answer bytes waiting for the client's flow-control window
        self.complete = False  # the whole answer is in `pending` (or sent)
        self.gone = False  # reset by the client, its connection lost, or cut here
        self.warnings: list[str] = []
        self._too_large = False
        self._started = False  # the answer's HEADERS are sent
        self._task: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    # --- the request (Exchange) -------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        if len(self.body) + len(data) > MAX_BODY:
            self._too_large = True  # the rest is acknowledged and dropped: the answer is 413
        elif not self._too_large:
            self.body += data

    def start(self) -> None:
        """The request is complete: parse what the pipeline reads of it and run the pipeline."""
        regular: list[tuple[str, str]] = []
        method, target, authority = b"GET", b"/", b""
        for name, value in self._raw_headers:
            if name.startswith(b":"):
                if name == b":method":
                    method = value
                elif name == b":path":
                    target = value
                elif name == b":authority":
                    authority = value
            else:
                regular.append((_text(name), _text(value)))
        if authority:
            regular.insert(0, ("Host", _text(authority)))
        headers = CIMultiDict(regular)
        url = URL(_text(target))
        self.method = _text(method)
        self.path: str = url.path
        self.query: MultiMapping[str] = url.query
        self.headers: MultiMapping[str] = CIMultiDictProxy(headers)
        self.content_type = media_type(headers.get("Content-Type"))
        self.connection.connections.handlers += 1
        self._task = asyncio.get_running_loop().create_task(self._serve())
        self._task.add_done_callback(self._served)  # also when cancelled before its first step (a reset at once)

    def peercert(self) -> dict[str, Any] | None:
        transport = self.connection.transport
        return transport.get_extra_info("peercert") if transport is not None else None

    async def read(self) -> bytes:
        if self._too_large:
            raise RequestEntityTooLarge(f"Request entity too large: limit is {MAX_BODY}")
        return bytes(self.body)

    def websocket(self) -> None:
        return None  # no WebSocket upgrade on HTTP/2 here: exec answers 400 as on HTTP/1.1 without an upgrade

    def drop(self) -> None:
        """The answer is lost: RST_STREAM (this stream only, as a proxy cutting one request would)."""
        self.cut()

    # --- the answer ---------------------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            answer = await self.connection.pipeline(self)
            if self.gone:
                return
            if isinstance(answer, Reply):
                self._reply(answer)
            elif not self.complete:
                self.cut()  # a streamed answer left unfinished (its client left): cut, not ended as if whole
        except asyncio.CancelledError:
            pass  # the stream is gone (a reset, the connection lost): nothing more to send
        except Exception:
            log.exception("error serving an HTTP/2 request %s %s", getattr(self, "method", "?"), getattr(self, "path", "?"))
            if not self.gone:
                if self._started:
                    self.cut()
                else:
                    message = "an error on the server has prevented the request from succeeding"
                    status = SimError(message).status()
                    self._reply(Reply(500, dumps(status)))

    def _served(self, task: asyncio.Task[None]) -> None:
        self.connection.connections.handlers -= 1
        self._task = None

    def _headers(self, status: int, content_type: str, extra: list[tuple[str, str]], length: int | None) -> bool:
        """Sends the answer's HEADERS (END_STREAM with them when it has no body); False when the stream is gone."""
        headers = [(b":status", str(status).encode()), (b"content-type", content_type.encode())]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        headers += [(name.lower().encode(), value.encode()) for name, value in extra]
        try:
            self.connection.conn.send_headers(self.stream_id, headers, end_stream=length == 0)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.connection.streams.pop(self.stream_id, None)
            self.lost()
            return False
        self._started = True
        return True

    def _reply(self, reply: Reply) -> None:
        body = b"" if self.method == "HEAD" else reply.body
        if not self._headers(reply.status, reply.content_type, reply.headers, len(body)):
            return
        self.complete = True
        if not body:
            self.connection.streams.pop(self.stream_id, None)
            self.connection.send_soon()
            return
        self.pending += body
        self.connection.flush(self)

    async def stream(self, content_type: str, headers: dict[str, str] | None = None) -> Stream:
        self._headers(200, content_type, list((headers or {}).items()), None)
        self.connection.send_soon()
        return self

    async def write(self, data: bytes) -> None:
        if self.gone:
            raise ConnectionResetError("the HTTP/2 stream is closed")
        self.pending += data
        self.connection.flush(self)
        while (self.pending or self.connection.paused) and not self.gone:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        if self.gone:
            raise ConnectionResetError("the HTTP/2 stream is closed")

    async def finish(self) -> None:
        if self.gone:
            raise ConnectionResetError("the HTTP/2 stream is closed")
        self.complete = True
        if self.pending:
            self.connection.flush(self)
        else:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self.connection.conn.end_stream(self.stream_id)
            self.connection.streams.pop(self.stream_id, None)
            self.connection.send_soon()

    def wake(self) -> None:
        """A writer waiting for the window or the transport goes on once both allow it (or the stream is gone)."""
        waiter = self._drained
        if waiter is not None and not waiter.done() and (self.gone or not (self.pending or self.connection.paused)):
            waiter.set_result(None)

    def cut(self) -> None:
        """RST_STREAM: the answer is not sent whole (a lost answer's fault, a handler that stopped half-way)."""
        if not self.gone:
            self.connection.reset(self.stream_id)
            self.lost(cancel=False)

    def lost(self, *, cancel: bool = True) -> None:
        """The stream is gone (reset by the client, its connection lost, or cut here): the pipeline task is
        cancelled (unless it is the one cutting), a waiting writer raises ConnectionResetError."""
        self.gone = True
        self.pending.clear()
        self.wake()
        task = self._task
        if cancel and task is not None and task is not asyncio.current_task():
            task.cancel()
