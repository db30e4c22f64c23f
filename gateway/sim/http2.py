"""HTTP/2 for the simulated API server, on the same TLS port as HTTP/1.1, chosen by ALPN.

kube-apiserver speaks HTTP/2 to every client that offers it (client-go, kubectl), with at most 100
concurrent streams a connection. aiohttp's server has no HTTP/2, so each HTTP/2 stream is handed to an
aiohttp request handler of its own as an HTTP/1.1 exchange: the stream's request is written as HTTP/1.1
bytes (h11) into the handler, and what the handler writes back is parsed (h11) into the stream's HEADERS
and DATA frames (h2). Every path, with the same authentication, RBAC, request log and faults as HTTP/1.1,
is served over both, because it is the same pipeline (apiserver.py) behind both.

Flow control is the client's: a stream's DATA waits for the client's window (a slow reader pauses the
handler's writes, as a full socket buffer pauses them on HTTP/1.1), and request bodies are acknowledged
as they arrive (bounded by aiohttp's own body limit).

What the handlers write in one turn of the event loop leaves in one TLS write (`send_soon`): a followed
log's headers and line, the lines of many streams, are frames of one record, not a record and a system
call each.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h11

MAX_CONCURRENT_STREAMS = 100  # kube-apiserver's since the fix of CVE-2023-44487
ALPN_HTTP2 = ["h2", "http/1.1"]
ALPN_HTTP1 = ["http/1.1"]
# Hop-by-hop headers of the handler's HTTP/1.1 answer: HTTP/2 forbids them (RFC 9113 8.2.2).
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
_REQUEST_DROPPED = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
                              b"te", b"host", b"content-length"})  # fmt: skip

Http1Factory = Callable[[], asyncio.Protocol]


def offer(context: ssl.SSLContext, http2: bool) -> ssl.SSLContext:
    """The server's ALPN offer: h2 first (ALPN picks the server's preference among the client's), or HTTP/1.1 only."""
    context.set_alpn_protocols(ALPN_HTTP2 if http2 else ALPN_HTTP1)
    return context


class Connections:
    """One server's HTTP/2 connections open now, and how many it accepted in all (tests count them)."""

    def __init__(self) -> None:
        self.open: set[Http2Connection] = set()
        self.accepted = 0
        self.handlers = 0  # streams whose aiohttp handler has not heard of their end yet


class AlpnSwitch(asyncio.Protocol):
    """A new TLS connection (connection_made comes after the handshake) goes to the HTTP/2 server when ALPN
    chose h2, to aiohttp's HTTP/1.1 handler otherwise; the switch then steps out of the way."""

    def __init__(self, http1: Http1Factory, connections: Connections) -> None:
        self._http1 = http1
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol = Http2Connection(self._http1, self._connections) if chosen == "h2" else self._http1()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class Http2Connection(asyncio.Protocol):
    """One client's HTTP/2 connection; each stream is served by an aiohttp handler through a `StreamTransport`."""

    def __init__(self, http1: Http1Factory, connections: Connections) -> None:
        self.http1 = http1
        self.connections = connections
        # What the client sends is validated and normalised by h2 (a client's malformed headers are refused as
        # kube-apiserver refuses them); what we send is aiohttp's answer as h11 parsed it (names lower-case,
        # values checked) less the hop-by-hop headers: h2's second pass over it cost ~5 % of the simulator's CPU.
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
        ))  # fmt: skip
        self.streams: dict[int, StreamTransport] = {}
        self.transport: asyncio.Transport | None = None
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
        for stream in list(self.streams.values()):
            stream.lost(exc)
        self.streams.clear()

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
            self.streams[event.stream_id] = StreamTransport(self, event.stream_id, event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.body += event.data or b""
        elif isinstance(event, h2.events.StreamEnded):  # the request is complete (a GET's END_STREAM on HEADERS)
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.start()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self.streams.pop(event.stream_id, None)) is not None:
                stream.lost(None)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for stream in list(self.streams.values()):
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

    def flush(self, stream: StreamTransport) -> None:
        """As much of the stream's answer as the client's windows allow; the rest waits for a WINDOW_UPDATE."""
        try:
            while stream.pending:
                window = self.conn.local_flow_control_window(stream.stream_id)
                size = min(window, self.conn.max_outbound_frame_size, len(stream.pending))
                if size <= 0:
                    break
                self.conn.send_data(stream.stream_id, bytes(stream.pending[:size]))
                del stream.pending[:size]
            if stream.complete and not stream.pending:
                self.conn.end_stream(stream.stream_id)
                self.streams.pop(stream.stream_id, None)
        except h2.exceptions.StreamClosedError:
            self.streams.pop(stream.stream_id, None)
            stream.lost(None)
        stream.backpressure(bool(stream.pending))
        self.send_soon()

    def reset(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self.send()

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
        for stream in self.streams.values():
            stream.backpressure(True)

    def resume_writing(self) -> None:
        for stream in list(self.streams.values()):
            self.flush(stream)


class StreamTransport(asyncio.Transport):
    """What one stream's aiohttp handler sees as its connection: the request comes in as HTTP/1.1 bytes,
    the answer it writes is parsed back (h11) into HEADERS and DATA on the stream."""

    def __init__(self, connection: Http2Connection, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__()
        self.connection = connection
        self.stream_id = stream_id
        self.headers = headers
        self.body = bytearray()
        self.pending = bytearray()  # answer bytes waiting for the client's flow-control window
        self.complete = False  # the handler wrote the whole answer
        self._parser = h11.Connection(h11.CLIENT)
        self._handler: asyncio.Protocol | None = None
        self._closing = False
        self._paused = False

    def start(self) -> None:
        """The request is complete: hand it, as HTTP/1.1, to a handler of its own."""
        pseudo = {k: v for k, v in self.headers if k.startswith(b":")}
        regular = [(k, v) for k, v in self.headers if not k.startswith(b":") and k.lower() not in _REQUEST_DROPPED]
        host = pseudo.get(b":authority") or dict(self.headers).get(b"host", b"localhost")
        headers = [(b"host", host), *regular, (b"connection", b"close")]
        if self.body:
            headers.append((b"content-length", str(len(self.body)).encode()))
        try:
            request = self._parser.send(
                h11.Request(method=pseudo.get(b":method", b"GET"), target=pseudo.get(b":path", b"/"), headers=headers)
            ) or b""
            if self.body:
                request += self._parser.send(h11.Data(data=bytes(self.body))) or b""
            request += self._parser.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            self.connection.reset(self.stream_id)
            return
        self.body = bytearray()
        self._handler = self.connection.http1()
        self.connection.connections.handlers += 1
        self._handler.connection_made(self)
        self._handler.data_received(request)

    # --- asyncio.Transport, as the handler uses it ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._parser.receive_data(bytes(data))
        try:
            while (event := self._parser.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
                self._answer(event)
        except h11.RemoteProtocolError:
            self.abort()
            return
        self.connection.flush(self)

    def _answer(self, event: Any) -> None:
        if isinstance(event, h11.Response):
            headers = [(b":status", str(event.status_code).encode())]
            headers += [(k, v) for k, v in event.headers if k not in _HOP_BY_HOP]
            self.connection.conn.send_headers(self.stream_id, headers)
        elif isinstance(event, h11.Data):
            self.pending += event.data
        elif isinstance(event, h11.EndOfMessage):
            self.complete = True

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """The handler is done; an answer it did not finish is cut (RST_STREAM), a finished one still drains."""
        if self._closing:
            return
        if not self.complete:
            self.connection.reset(self.stream_id)
        self._closing = True
        asyncio.get_running_loop().call_soon(self.lost, None)

    def abort(self) -> None:
        """A dropped connection (a lost answer, an outage) for this stream only: RST_STREAM."""
        self.complete = False
        self.close()

    def lost(self, exc: Exception | None) -> None:
        """The stream is gone (reset by the client, its connection lost, or closed here): tell the handler once."""
        self._closing = True
        handler, self._handler = self._handler, None
        if handler is not None:
            self.connection.connections.handlers -= 1
            handler.connection_lost(exc)

    def backpressure(self, paused: bool) -> None:
        if paused == self._paused or self._handler is None:
            return
        self._paused = paused
        if paused:
            self._handler.pause_writing()
        else:
            self._handler.resume_writing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return default  # one socket carries many streams: the handler must not tune it
        if self.connection.transport is None:
            return default
        return self.connection.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self._closing

    def get_write_buffer_size(self) -> int:
        return len(self.pending)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._handler = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._handler is not None
        return self._handler
