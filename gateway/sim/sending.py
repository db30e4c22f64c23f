"""Writing a streamed answer (a watch, a followed log) to a client that may leave at any moment.

Clients leave mid-stream all the time: `kubectl get -w` interrupted, a gateway restarting its watches.
aiohttp learns of it a turn or two of the event loop after the transport does (asyncio delivers
`connection_lost` through `call_soon`, twice over TLS), then cancels the handler. Two things go wrong
in between unless the handler takes care:

- a write raises `ConnectionResetError` ("Cannot write to closing transport"; on HTTP/2, a stream reset),
  which aiohttp logs as
  ERROR "Error handling request" with a traceback: `client_may_leave()` ends the handler quietly;
- a handler that writes without ever yielding (a log replayed from memory) never lets the loss be
  delivered, and keeps writing into the dead TLS connection, blocking the loop while asyncio warns
  "socket.send() raised exception." on every write: `send` yields after each write.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sim.exchange import Stream


async def send(response: Stream, data: bytes) -> None:
    """Writes `data`, then lets the event loop run once, so a client's departure reaches this handler."""
    await response.write(data)
    await asyncio.sleep(0)


def client_may_leave() -> contextlib.AbstractContextManager[None]:
    """Around a handler's writes: the client leaving ends the stream, with nothing to answer or log."""
    return contextlib.suppress(ConnectionResetError)
