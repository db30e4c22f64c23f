"""The API server's TLS handshakes, started by the simulator itself so that a fault can hold them back.

An API server under a burst (its CPU taken by TLS and by requests, its accept queue long) completes a new
connection's handshake late: the client's TCP connect succeeds and its ClientHello waits unanswered past the
client's connect timeout. `Faults.stalled_handshakes` models it: the next N connections accepted are held without
a handshake (the ClientHello unread) until the client gives up and closes. Every other connection's handshake
starts at once, on the listener's own TLS context, and the connection then goes to the protocol the listener
was made with (`http2.AlpnSwitch`), as `create_server(ssl=...)` would have handed it.

The standard event loop only (`gates`): uvloop reads a new connection's first bytes before its protocol can pause
it, so the ClientHello would be gone before `start_tls`. `podgate sim` on uvloop (virtual nodes, benchmarks)
listens with `create_server(ssl=...)` as before, and holds no handshake back.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

from gateway.sim.faults import Faults


def gates(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether connections on `loop` can go through `TlsGate` (see the module's docstring)."""
    return isinstance(loop, asyncio.BaseEventLoop)


class Held:
    """The connections whose handshakes are held now, and the handshakes under way (both ended when the cluster
    drops its connections: a handshake left pending when the loop closes would be logged as a destroyed task)."""

    def __init__(self) -> None:
        self.transports: set[asyncio.Transport] = set()
        self.handshakes: set[asyncio.Task[None]] = set()  # under way: cancelled with the connections

    def abort_all(self) -> None:
        for task in list(self.handshakes):
            task.cancel()
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()


class TlsGate(asyncio.Protocol):
    """A plain TCP connection whose TLS handshake this side starts, unless `faults` holds it back."""

    def __init__(
        self, factory: Callable[[], asyncio.Protocol], context: ssl.SSLContext, faults: Faults, held: Held
    ) -> None:
        self._factory, self._context, self._faults, self._held = factory, context, faults, held
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are no asyncio.Transport subclass
        self._transport.pause_reading()  # the ClientHello stays in the socket for the handshake (or for ever)
        if self._faults.take_stalled_handshake():
            self._held.transports.add(self._transport)
            return
        task = asyncio.get_running_loop().create_task(self._handshake())
        self._held.handshakes.add(task)
        task.add_done_callback(self._held.handshakes.discard)

    async def _handshake(self) -> None:
        assert self._transport is not None
        early = _Early()
        try:
            transport = await asyncio.get_running_loop().start_tls(
                self._transport, early, self._context, server_side=True
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError):
            self._transport.abort()  # a client that went away, or spoke no TLS: as create_server(ssl=...) drops it
            return
        if transport is not None:
            self._factory().connection_made(transport)  # sets the transport's protocol for the connection's life
            early.hand_over(transport.get_protocol())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._held.transports.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        pass  # reading is paused until the handshake takes the socket over


class _Early(asyncio.Protocol):
    """What arrives between the handshake's end and `start_tls` returning (the TLS layer reads on at once, and
    the client's request often comes in the same loop turn), kept for the protocol that serves the connection."""

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._eof = False
        self._lost = False

    def data_received(self, data: bytes) -> None:
        self._data.append(data)

    def eof_received(self) -> bool:
        self._eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True

    def hand_over(self, protocol: asyncio.BaseProtocol) -> None:
        served = cast(asyncio.Protocol, protocol)
        for data in self._data:
            served.data_received(data)
        if self._eof:
            served.eof_received()
        if self._lost:
            served.connection_lost(None)
