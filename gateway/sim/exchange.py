"""One API request and its answer as the simulated API server's pipeline sees them, whatever the protocol.

The pipeline (apiserver.py) and its handlers read the request and answer it through these small types;
`http1.py` adapts an aiohttp request to them, `http2.py` an HTTP/2 stream. HTTP/2 used to reach the handlers
as an HTTP/1.1 exchange written into aiohttp and parsed back with h11 (a third of the simulator's CPU per
pod): with this seam each protocol serves the same pipeline directly.

An answer is either a `Reply` (status, headers, a whole body), written by the protocol's side, or a
`Stream` (a watch, a followed log, an exec session) that the handler opened with `Exchange.stream` and has
written itself, with the protocol's flow control (a write waits for a slow reader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from multidict import MultiMapping

if TYPE_CHECKING:
    from aiohttp import web

OCTET_STREAM = "application/octet-stream"  # aiohttp's content_type when a request has none
MAX_BODY = 8 * 1024 * 1024  # a request body's limit, on both protocols


@dataclass
class Reply:
    """A whole answer: its status, body and headers (Content-Type among them)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class Stream(Protocol):
    """A streamed answer whose headers are sent: chunks go out as they are written, then the end."""

    @property
    def status(self) -> int: ...

    async def write(self, data: bytes) -> None:
        """Sends `data`; waits while the client's windows or buffers are full. ConnectionResetError once it left."""

    async def finish(self) -> None:
        """The end of the answer (the last chunk on HTTP/1.1, END_STREAM on HTTP/2)."""


Answer = Reply | Stream


class Exchange(Protocol):
    """What the pipeline reads of a request, and the means to answer it in pieces or drop it."""

    method: str
    path: str  # decoded, without the query
    content_type: str  # the media type, lower-case, without parameters; OCTET_STREAM when absent
    warnings: list[str]  # `Warning` headers of the answer (unknown fields)

    @property
    def query(self) -> MultiMapping[str]: ...

    @property
    def headers(self) -> MultiMapping[str]:
        """Case-insensitive names."""

    def peercert(self) -> dict[str, Any] | None:
        """The client's verified TLS certificate as `ssl` reports it, None when it sent none."""

    async def read(self) -> bytes:
        """The request's whole body."""

    async def stream(self, content_type: str, headers: dict[str, str] | None = None) -> Stream:
        """Sends a 200's headers and returns the stream its body is written to."""

    def websocket(self) -> web.Request | None:
        """aiohttp's request when the client asked for a WebSocket upgrade (HTTP/1.1 only: exec), else None."""

    def drop(self) -> None:
        """The answer is lost: the connection (HTTP/1.1) or the stream (HTTP/2) is cut, no byte of it sent."""


def media_type(value: str | None) -> str:
    """A Content-Type header's media type as aiohttp reports it: lower-case, no parameters."""
    if not value:
        return OCTET_STREAM
    return value.split(";", 1)[0].strip().lower() or OCTET_STREAM
