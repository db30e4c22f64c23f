"""A streamed answer's body (a followed log, a watch) as chunks, whichever protocol carries it.

Both kinds raise the client's errors: StreamSilent when no byte came for the inactivity deadline,
ApiUnreachable when the stream was cut (a reset, a GOAWAY, the connection lost), so a follower resumes
the same way over HTTP/1.1 and HTTP/2.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp

from gateway.clusters.kubeapi.errors import StreamSilent, unreachable
from gateway.clusters.kubeapi.http2_stream import Http2Stream


class Body(Protocol):
    def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, until its end."""

    def release(self) -> None:
        """Done with it (its end read, or given up): the connection or stream is freed."""


class Http1Body:
    """An aiohttp response held open (one HTTP/1.1 connection)."""

    def __init__(self, response: aiohttp.ClientResponse, cluster: str, call: str, inactivity: float | None) -> None:
        self._response, self._cluster, self._call, self._inactivity = response, cluster, call, inactivity

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
                del chunk  # else held while the stream is quiet, maybe for hours (so below and in client.py)
        except TimeoutError as e:
            raise silent(self._cluster, self._call, self._inactivity) from e
        except aiohttp.ClientError as e:
            raise unreachable(self._cluster, self._call, e) from e

    def release(self) -> None:
        self._response.release()


class Http2Body:
    """One HTTP/2 stream on a shared connection; each chunk is acknowledged as it is read."""

    def __init__(self, stream: Http2Stream, cluster: str, call: str, inactivity: float | None) -> None:
        self._stream, self._cluster, self._call, self._inactivity = stream, cluster, call, inactivity

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._stream.read(self._inactivity):
                yield chunk
                del chunk
        except TimeoutError as e:
            raise silent(self._cluster, self._call, self._inactivity) from e
        except ConnectionError as e:
            raise unreachable(self._cluster, self._call, e) from e

    def release(self) -> None:
        self._stream.release()


def silent(cluster: str, call: str, inactivity: float | None) -> StreamSilent:
    return StreamSilent(f"cluster {cluster!r}: {call}: no data for {inactivity}s")
