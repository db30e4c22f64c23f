"""HTTP/1.1 for the simulated API server: aiohttp's request and response behind the pipeline's `Exchange`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from gateway.sim.exchange import Answer, Reply, Stream
from gateway.sim.sending import client_may_leave


class Http1Stream:
    """A prepared aiohttp response (a chunked body, or a WebSocket) as the pipeline's `Stream`."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response

    @property
    def status(self) -> int:
        return self.response.status

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    async def finish(self) -> None:
        await self.response.write_eof()


class Http1Exchange:
    """One aiohttp request as the pipeline's `Exchange`."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.method = request.method
        self.path = request.path
        self.query = request.query
        self.headers = request.headers
        self.content_type = request.content_type
        self.warnings: list[str] = []

    def peercert(self) -> dict[str, Any] | None:
        transport = self.request.transport
        return transport.get_extra_info("peercert") if transport is not None else None

    async def read(self) -> bytes:
        return await self.request.read()

    async def stream(self, content_type: str, headers: dict[str, str] | None = None) -> Stream:
        response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
        response.enable_chunked_encoding()
        with client_may_leave():  # a client gone already: the stream's writes raise ConnectionResetError
            await response.prepare(self.request)
        return Http1Stream(response)

    def websocket(self) -> web.Request | None:
        upgrade = self.request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        return self.request if upgrade else None

    def drop(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()


def response(answer: Answer) -> web.StreamResponse:
    """What aiohttp sends for the pipeline's answer (a streamed one is already prepared and written)."""
    if isinstance(answer, Http1Stream):
        return answer.response
    assert isinstance(answer, Reply), answer
    reply = web.Response(body=answer.body, status=answer.status, headers={hdrs.CONTENT_TYPE: answer.content_type})
    for name, value in answer.headers:
        reply.headers.add(name, value)
    return reply


def handler(pipeline: Callable[[Http1Exchange], Awaitable[Answer]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler that runs `pipeline` on each request."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return response(await pipeline(Http1Exchange(request)))

    return handle
