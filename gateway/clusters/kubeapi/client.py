"""`ClusterClient`: one cluster's Kubernetes API over HTTP/2 (h2) or HTTP/1.1 (aiohttp). Async only.

The verbs and streams callers use. Every one goes through `transport.py`, the one place that does
outbound I/O (credentials, retries, the error tree); requests are built by `request.py` and answers
decoded by `decode.py`, so this module only ties them together.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal, Self, overload

import aiohttp

from gateway.clusters.kubeapi import request as rq
from gateway.clusters.kubeapi.channels import ExecCollector, ExecResult
from gateway.clusters.kubeapi.decode import (
    LineSplitter,
    Narrow,
    ObjectList,
    WatchEvent,
    decode_list,
    decode_log_line,
    decode_object,
    decode_token,
    decode_watch_line,
)
from gateway.clusters.kubeapi.errors import AlreadyExists, Conflict, NotFound, StreamSilent, unreachable
from gateway.clusters.kubeapi.request import KubeObject, Request, Resource
from gateway.clusters.kubeapi.retry import DEFAULT_RETRY, Draw, RetryPolicy
from gateway.clusters.kubeapi.timeouts import DEFAULT_TIMEOUTS, Timeouts
from gateway.clusters.kubeapi.transport import Reachability, Sleep, Transport
from gateway.credentials.base import CredentialProvider

log = logging.getLogger(__name__)

ENSURE_ATTEMPTS = 5
LOG_LINE_BYTES = 1 << 20  # a longer log line comes in pieces (memory bound); watch events are never cut


class ClusterClient:
    """The API of one cluster. Close it (or use `async with`) to release its connections."""

    def __init__(
        self,
        provider: CredentialProvider,
        *,
        name: str = "",
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry_policy: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        draw: Draw = random.random,
        http2: bool = True,
    ) -> None:
        """`http2`: requests (all but exec's WebSocket) share HTTP/2 connections when the API server offers h2
        and no proxy is in the way (settings' `clusters.api_protocol`); False: HTTP/1.1, a connection per open stream."""
        self.name = name or provider.cluster
        self.timeouts = timeouts
        self._provider = provider
        self._transport = Transport(
            provider, name=self.name, timeouts=timeouts, retry_policy=retry_policy, sleep=sleep, draw=draw,
            http2=http2,
        )  # fmt: skip

    @property
    def over_http2(self) -> bool:
        """Whether requests, watches and followed logs share HTTP/2 connections now (the server chose h2)."""
        return self._transport.over_http2

    @property
    def http2_handshakes(self) -> int:
        """HTTP/2 connections opened to the current endpoint."""
        return self._transport.http2_handshakes

    @property
    def reachability(self) -> Reachability | None:
        """Told of every call's outcome and asked before each retry (see Transport)."""
        return self._transport.reachability

    @reachability.setter
    def reachability(self, value: Reachability | None) -> None:
        self._transport.reachability = value

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    async def send(self, request: Request) -> KubeObject:
        """Send any prepared request and decode its JSON object answer."""
        return decode_object(await self._transport.read(request), cluster=self.name, call=request.call)

    async def _apply(self, request: Request) -> None:
        """Send a request whose answer nobody reads (the dispatcher's creates and deletes): retried, its status
        checked and an error answer raised as `send` raises it; a 2xx answer's body (a whole pod) is read to its
        end but not decoded (~0.35 % of a dispatched pod's busy samples: helper h2rx, bench/README.md). A 2xx
        body that is not a JSON object is then no error: the status says the API server did what was asked."""
        await self._transport.read(request)

    # --- generic verbs --------------------------------------------------------------------

    async def get_object(self, resource: Resource, namespace: str | None, name: str) -> KubeObject:
        return await self.send(rq.prepare_get(resource, namespace, name))

    async def list_objects(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
    ) -> ObjectList:
        request = rq.prepare_list(
            resource,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            continue_token=continue_token,
            resource_version=resource_version,
        )
        return decode_list(await self._transport.read(request), cluster=self.name, call=request.call)

    async def list_all(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str = "", field_selector: str = "",
        page_size: int = 500,
    ) -> ObjectList:  # fmt: skip
        """Every page of a list; the resourceVersion is the first page's (a consistent snapshot)."""
        items: list[KubeObject] = []
        first: ObjectList | None = None
        token = ""
        while True:
            page = await self.list_objects(
                resource, namespace, label_selector=label_selector, field_selector=field_selector,
                limit=page_size, continue_token=token,
            )  # fmt: skip
            first = first or page
            items += page.items
            token = page.continue_token
            if not token:
                return ObjectList(items=tuple(items), resource_version=first.resource_version)

    async def create_object(self, resource: Resource, namespace: str | None, body: Mapping[str, Any]) -> KubeObject:
        return await self.send(rq.prepare_create(resource, namespace, body))

    async def replace_object(
        self, resource: Resource, namespace: str | None, name: str, body: Mapping[str, Any]
    ) -> KubeObject:
        return await self.send(rq.prepare_replace(resource, namespace, name, body))

    async def delete_object(
        self, resource: Resource, namespace: str | None, name: str, *, grace_seconds: int | None = None
    ) -> KubeObject:
        return await self.send(rq.prepare_delete(resource, namespace, name, grace_seconds=grace_seconds))

    async def ensure_object(self, resource: Resource, namespace: str | None, body: Mapping[str, Any]) -> KubeObject:
        """Create, or replace the existing object of that name with `body` (declarative, like apply).

        Optimistic concurrency: when another writer changes or deletes the object between our read and
        our replace (409 Conflict, 404), read again, a few times, as controllers do.
        """
        name = str(body["metadata"]["name"])
        for attempt in range(1, ENSURE_ATTEMPTS + 1):
            try:
                return await self.create_object(resource, namespace, body)
            except AlreadyExists:
                pass
            try:
                current = await self.get_object(resource, namespace, name)
                version = current.get("metadata", {}).get("resourceVersion", "")
                merged = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
                return await self.replace_object(resource, namespace, name, merged)
            except (Conflict, NotFound):
                if attempt == ENSURE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    # --- what the dispatch core and credentials call --------------------------------------

    async def get_version(self) -> KubeObject:
        """The health probe: cheap, and any authenticated identity may read it."""
        return await self.send(rq.prepare_version())

    @overload
    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> KubeObject: ...

    @overload
    async def create_pod(self, namespace: str, body: Mapping[str, Any], *, answer: Literal[False]) -> None: ...

    async def create_pod(self, namespace: str, body: Mapping[str, Any], *, answer: bool = True) -> KubeObject | None:
        """Create a pod. A retried create whose first try landed answers AlreadyExists: names are unique.
        `answer=False`: see `_apply`."""
        request = rq.prepare_create(rq.PODS, namespace, body)
        if answer:
            return await self.send(request)
        await self._apply(request)
        return None

    async def get_pod(self, namespace: str, name: str) -> KubeObject:
        return await self.get_object(rq.PODS, namespace, name)

    async def list_pods(
        self, namespace: str | None = None, *, label_selector: str = "", field_selector: str = "", limit: int = 0,
        continue_token: str = "",
    ) -> ObjectList:  # fmt: skip
        return await self.list_objects(
            rq.PODS, namespace, label_selector=label_selector, field_selector=field_selector, limit=limit,
            continue_token=continue_token,
        )  # fmt: skip

    @overload
    async def delete_pod(self, namespace: str, name: str, *, grace_seconds: int | None = None) -> KubeObject: ...

    @overload
    async def delete_pod(
        self, namespace: str, name: str, *, grace_seconds: int | None = None, answer: Literal[False]
    ) -> None: ...

    async def delete_pod(
        self, namespace: str, name: str, *, grace_seconds: int | None = None, answer: bool = True
    ) -> KubeObject | None:
        """`answer=False`: see `_apply`."""
        request = rq.prepare_delete(rq.PODS, namespace, name, grace_seconds=grace_seconds)
        if answer:
            return await self.send(request)
        await self._apply(request)
        return None

    async def list_nodes(self, *, label_selector: str = "") -> ObjectList:
        return await self.list_all(rq.NODES, label_selector=label_selector)

    async def list_events(self, namespace: str, *, field_selector: str = "") -> ObjectList:
        return await self.list_all(rq.EVENTS, namespace, field_selector=field_selector)

    async def create_token(
        self, namespace: str, service_account: str, *, expiration_seconds: int, bound_secret: str = "",
        bound_secret_uid: str = "", audiences: Sequence[str] = (),
    ) -> tuple[str, str]:  # fmt: skip
        """A TokenRequest: (token, expirationTimestamp). The token is a secret: never log it."""
        request = rq.prepare_token_request(
            namespace, service_account, expiration_seconds=expiration_seconds, bound_secret=bound_secret,
            bound_secret_uid=bound_secret_uid, audiences=audiences,
        )  # fmt: skip
        return decode_token(await self._transport.read(request), cluster=self.name, call=request.call)

    # --- streams --------------------------------------------------------------------------

    async def stream_logs(
        self,
        namespace: str,
        pod: str,
        container: str = "",
        *,
        follow: bool = False,
        timestamps: bool = False,
        since_time: datetime | None = None,
        tail_lines: int | None = None,
    ) -> AsyncIterator[str]:
        """A container's log, line by line (no trailing newline). A cut stream raises ApiUnreachable:
        resume with `since_time` and `timestamps=True` to drop the lines already seen."""
        batches = self.stream_log_batches(
            namespace, pod, container, follow=follow, timestamps=timestamps, since_time=since_time,
            tail_lines=tail_lines,
        )  # fmt: skip
        async with aclosing(batches):
            async for batch in batches:
                for line in batch:
                    yield line
                    del line  # a quiet log's frames hold nothing of its last line (nor below)
                del batch

    async def stream_log_batches(
        self,
        namespace: str,
        pod: str,
        container: str = "",
        *,
        follow: bool = False,
        timestamps: bool = False,
        since_time: datetime | None = None,
        tail_lines: int | None = None,
    ) -> AsyncGenerator[list[str], None]:
        """Like `stream_logs`, but the lines that arrived together come as one list (never empty), so a
        chatty container is journalled in a few transactions rather than one per line."""
        request = rq.prepare_logs(
            namespace, pod, container, follow=follow, timestamps=timestamps, since_time=since_time,
            tail_lines=tail_lines,
        )  # fmt: skip
        limits = aiohttp.ClientTimeout(connect=self.timeouts.connect, sock_read=self.timeouts.log_inactivity)
        async for lines in self._line_batches(request, limits):
            yield [decode_log_line(line) for line in lines]
            del lines

    async def watch_stream(
        self, resource: Resource, namespace: str | None = None, *, resource_version: str = "",
        label_selector: str = "", field_selector: str = "", narrow: Narrow | None = None,
    ) -> AsyncIterator[WatchEvent]:  # fmt: skip
        """One watch connection. Ends quietly when the server closes it or it goes silent for
        `watch_inactivity`; an expired resourceVersion raises Gone. With `narrow`, each object is decoded
        into the fields its shape names only (decode.Narrow)."""
        batches = self.watch_batches(
            resource, namespace, resource_version=resource_version, label_selector=label_selector,
            field_selector=field_selector, narrow=narrow,
        )  # fmt: skip
        async with aclosing(batches):
            async for events in batches:
                for event in events:
                    yield event

    async def watch_batches(
        self, resource: Resource, namespace: str | None = None, *, resource_version: str = "",
        label_selector: str = "", field_selector: str = "", narrow: Narrow | None = None,
    ) -> AsyncGenerator[list[WatchEvent], None]:  # fmt: skip
        """`watch_stream`, the events of each chunk read as one list (never empty): a watch's consumer takes a
        chunk's events in one step instead of a generator hop each (~5 pod events a chunk under load). A line
        that raises (an ERROR line: 410 Gone) raises after the events before it."""
        request = rq.prepare_watch(
            resource, namespace, resource_version=resource_version, label_selector=label_selector,
            field_selector=field_selector, timeout_seconds=self.timeouts.watch_seconds,
        )  # fmt: skip
        timeout = aiohttp.ClientTimeout(connect=self.timeouts.connect, sock_read=self.timeouts.watch_inactivity)
        name, call = self.name, request.call
        try:  # the lines of each chunk read in place
            async with aclosing(self._line_batches(request, timeout, max_line=None)) as batches:
                async for batch in batches:
                    events: list[WatchEvent] = []
                    failure: Exception | None = None
                    for line in batch:
                        if line.strip():
                            try:
                                events.append(decode_watch_line(line, cluster=name, call=call, narrow=narrow))
                            except Exception as e:  # raised once the events before it are delivered
                                failure = e
                                break
                    del batch
                    if events:
                        yield events
                        del events  # a quiet watch's frame holds nothing of its last chunk
                    if failure is not None:
                        raise failure
        except StreamSilent:
            log.debug("cluster %s: %s: silent for %ss, reconnecting", self.name, request.call, timeout.sock_read)

    async def _line_batches(
        self, request: Request, limits: aiohttp.ClientTimeout, *, max_line: int | None = LOG_LINE_BYTES,
    ) -> AsyncGenerator[list[bytes], None]:  # fmt: skip
        """The complete lines of each chunk read; longer than `max_line`, a line comes in pieces (None: whole)."""
        body = await self._transport.open_stream(request, limits)
        splitter = LineSplitter(max_line)
        try:
            async for chunk in body.chunks():
                if lines := list(splitter.feed(chunk)):
                    yield lines
                    del lines
                del chunk
            if (tail := splitter.rest()) is not None:
                yield [tail]
        finally:
            body.release()

    async def exec(
        self, namespace: str, pod: str, container: str, command: Sequence[str], *,
        protocols: tuple[str, ...] = rq.EXEC_PROTOCOLS,
    ) -> ExecResult:  # fmt: skip
        """Run `command` in a container (no stdin, no tty): (exit_code, stdout, stderr).
        The server picks the first of `protocols` it speaks (v5, else v4)."""
        request = replace(rq.prepare_exec(namespace, pod, container, command), websocket_protocols=protocols)
        collector = ExecCollector()
        ws = await self._transport.open_websocket(request)
        try:
            async with asyncio.timeout(self.timeouts.exec_total):
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.BINARY:
                        collector.feed(message.data)
                    elif message.type is aiohttp.WSMsgType.ERROR:
                        raise unreachable(self.name, request.call, ws.exception() or ConnectionError("ws error"))
        except TimeoutError as e:
            raise unreachable(self.name, request.call, e) from e
        finally:
            await ws.close()
        return collector.result()


