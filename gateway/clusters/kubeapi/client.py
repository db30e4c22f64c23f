"""`ClusterClient`: one cluster's Kubernetes API over aiohttp. Async only.

Every call goes through `_call`, the one place that does outbound I/O: it adds the bearer token,
refreshes it once after a 401, maps failures to the error tree and retries by the pure policy in
`retry.py`. Requests are built by `request.py` and answers decoded by `decode.py`; this module only
moves bytes. One aiohttp session per cluster, trusting exactly the endpoint's CA.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar

import aiohttp
from multidict import CIMultiDict

from gateway.clusters.kubeapi import request as rq
from gateway.clusters.kubeapi.channels import ExecCollector, ExecResult
from gateway.clusters.kubeapi.decode import (
    LineSplitter,
    ObjectList,
    WatchEvent,
    decode_list,
    decode_log_line,
    decode_object,
    decode_token,
    decode_watch_line,
)
from gateway.clusters.kubeapi.errors import (
    AlreadyExists,
    ApiUnreachable,
    Conflict,
    GatewayExhausted,
    KubeError,
    NotFound,
    StreamSilent,
    Unauthorized,
    error_for,
    parse_retry_after,
    unreachable,
)
from gateway.clusters.kubeapi.request import KubeObject, Request, Resource
from gateway.clusters.kubeapi.retry import DEFAULT_RETRY, NO_RETRY, Draw, RetryPolicy, decide
from gateway.clusters.kubeapi.timeouts import DEFAULT_TIMEOUTS, Timeouts
from gateway.credentials import proxy as proxies
from gateway.credentials.base import CredentialError, CredentialProvider, Endpoint

log = logging.getLogger(__name__)

T = TypeVar("T")
ENSURE_ATTEMPTS = 5
USER_AGENT = "podgate/0.1"
LOG_LINE_BYTES = 1 << 20  # a longer log line comes in pieces (memory bound); watch events are never cut
Sleep = Callable[[float], Awaitable[None]]


class Reachability(Protocol):
    """The cluster's health as every call sees it (clusters/runtime.py keeps it)."""

    @property
    def down(self) -> bool: ...

    def report(self, error: KubeError | None, *, decisive: bool) -> None:
        """One call's outcome; `decisive`: no connection could be made at all."""


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
    ) -> None:
        self.name = name or provider.cluster
        self.timeouts = timeouts
        self._provider = provider
        self._policy = retry_policy
        self._sleep = sleep
        self._draw = draw
        self._session: aiohttp.ClientSession | None = None
        self._endpoint: Endpoint | None = None
        self._base = ""
        self._server_hostname: str | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        # Told of every call's outcome, so any caller that cannot reach the API server marks the cluster
        # down at once (not at the next probe), and asked before each retry: a cluster known to be down
        # is not retried, so its callers move on (a create fails over) without spending the backoff.
        self.reachability: Reachability | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the one outbound path ------------------------------------------------------------

    async def _open_session(self) -> aiohttp.ClientSession:
        """The session for the provider's current endpoint. When the endpoint changes (an exec plugin's
        client certificate expired and was renewed), the old session and its connections are closed,
        as client-go closes every connection when its client certificate rotates."""
        endpoint = await self._provider.endpoint()
        if self._session is not None and endpoint is self._endpoint:
            return self._session
        async with self._lock:
            if self._closed:
                raise RuntimeError(f"client of cluster {self.name!r} is closed")
            if self._session is None or endpoint != self._endpoint:
                old, self._session = self._session, self._new_session(endpoint)
                if old is not None:
                    await old.close()
            self._endpoint = endpoint
            return self._session

    def _new_session(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        # No pool limit: watches and followed logs each hold a connection for their lifetime, and
        # a full pool would stall every other call. Callers bound how many streams they open.
        proxy = proxies.proxy_for(endpoint.server, endpoint.proxy_url, os.environ)
        connector = proxies.connector(endpoint.ssl_context(), proxy, proxy_ca=endpoint.ca_data)
        self._base = endpoint.server.rstrip("/")
        self._server_hostname = endpoint.tls_server_name or None
        # trust_env=False: the proxy is chosen above, from the kubeconfig and HTTPS_PROXY/NO_PROXY, once.
        return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}, trust_env=False)

    async def _headers(self, request: Request, *, force_refresh: bool) -> Headers:
        headers = Headers(request.headers)
        token = await self._provider.token(force_refresh=force_refresh)
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        return headers

    def _impersonate(self, headers: Headers) -> None:
        if self._endpoint is not None and self._endpoint.impersonation is not None:
            for name, value in self._endpoint.impersonation.headers():
                headers.add(name, value)

    async def _call(self, request: Request, send: Callable[[aiohttp.ClientSession, Headers], Awaitable[T]]) -> T:
        """Run `send` with fresh credentials under the retry policy; `send` raises KubeError for answers.

        A 401 refreshes the token and retries once. A failure to connect (TLS included) or a 401 that a
        fresh token did not cure asks the provider to resolve the endpoint again (its CA, address or
        client certificate may have rotated) and, when it changed, retries once at once."""
        attempt, refreshed, force, relocated = 0, False, False, False
        started = asyncio.get_running_loop().time()
        while True:
            attempt += 1
            # Credentials first: after a 401 the forced refresh may renew an exec plugin's client
            # certificate too, and the session must then be the one presenting the new certificate.
            headers = await self._headers(request, force_refresh=force)
            session = await self._open_session()
            self._impersonate(headers)
            force = False
            try:
                answer = await send(session, headers)
            except KubeError as e:
                if isinstance(e, Unauthorized) and not refreshed:
                    log.debug("cluster %s: %s: 401, refreshing the token and retrying once", self.name, request.call)
                    refreshed = force = True
                    attempt -= 1  # the retry with a fresh token is not one of the policy's attempts
                    continue
                if not relocated and _endpoint_suspect(e) and await self._endpoint_moved(request, e):
                    relocated = True
                    attempt -= 1  # nor is the retry at the new endpoint
                    continue
                self._report(e)
                if isinstance(e, ApiUnreachable) and self.reachability is not None and self.reachability.down:
                    raise  # known down: the caller moves on (fails over) instead of spending the backoff
                elapsed = asyncio.get_running_loop().time() - started
                decision = decide(
                    self._policy if request.retry else NO_RETRY, e, attempt, draw=self._draw(), elapsed=elapsed
                )
                if not decision.retry:
                    raise
                log.debug(
                    "cluster %s: %s: attempt %d/%d failed (%s: %s); retrying in %.2fs",
                    self.name, request.call, attempt, self._policy.attempts, decision.why, e, decision.delay,
                )  # fmt: skip
                await self._sleep(decision.delay)
                continue
            self._report(None)
            return answer

    def _report(self, error: KubeError | None) -> None:
        """An answer (any HTTP status) proves the API server reachable; a connection that could not be made
        (refused, connect timeout, TLS) proves it is not. A connection cut after the request went out says
        little (a proxy, a lost answer), and the gateway's own exhaustion nothing: the probe judges those."""
        if self.reachability is None:
            return
        if not isinstance(error, ApiUnreachable | GatewayExhausted):
            self.reachability.report(None, decisive=False)
        elif isinstance(error, ApiUnreachable) and not error.maybe_sent:
            self.reachability.report(error, decisive=True)

    async def _endpoint_moved(self, request: Request, error: KubeError) -> bool:
        """Whether the provider, asked again, names another endpoint than the one that failed."""
        stale = self._endpoint
        if stale is None:
            return False
        try:
            fresh = await self._provider.endpoint(stale=stale)
        except CredentialError as e:
            log.debug("cluster %s: looking the endpoint up again failed: %s", self.name, e)
            return False  # the request's own error says more
        if fresh == stale:
            return False
        log.info(
            "cluster %s: %s failed (%s); the endpoint changed (now %s), retrying there",
            self.name, request.call, type(error).__name__, fresh.server,
        )  # fmt: skip
        return True

    async def _check(self, request: Request, response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
        if response.status < 400:
            return response
        try:
            body = await response.read()
        except aiohttp.ClientError:
            body = b""
        finally:
            response.release()
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise error_for(response.status, body, cluster=self.name, call=request.call, retry_after=retry_after)

    async def _request(
        self, session: aiohttp.ClientSession, request: Request, headers: Headers, limits: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        try:
            response = await session.request(
                request.method,
                self._base + request.path,
                params=request.params,
                data=request.data(),
                headers=headers,
                timeout=limits,
                server_hostname=self._server_hostname,
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise unreachable(self.name, request.call, e, maybe_sent=not _never_connected(e)) from e
        return await self._check(request, response)

    async def _open(self, request: Request, limits: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """A response with a 2xx status and its body unread, for streams; the caller releases it."""
        return await self._call(request, lambda session, headers: self._request(session, request, headers, limits))

    async def _read(self, request: Request) -> bytes:
        """The whole body of a 2xx answer; reading it is part of the retried attempt."""
        timeout = aiohttp.ClientTimeout(total=self.timeouts.request, connect=self.timeouts.connect)

        async def send(session: aiohttp.ClientSession, headers: Headers) -> bytes:
            async with await self._request(session, request, headers, timeout) as response:
                try:
                    return await response.read()
                except (aiohttp.ClientError, TimeoutError) as e:
                    raise unreachable(self.name, request.call, e) from e

        return await self._call(request, send)

    async def _open_ws(self, request: Request) -> aiohttp.ClientWebSocketResponse:
        async def send(session: aiohttp.ClientSession, headers: Headers) -> aiohttp.ClientWebSocketResponse:
            try:
                return await session.ws_connect(
                    self._base + request.path,
                    params=request.params,
                    headers=headers,
                    protocols=request.websocket_protocols,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.timeouts.connect),
                    server_hostname=self._server_hostname,
                    autoping=True,
                )
            except aiohttp.WSServerHandshakeError as e:
                message = f"WebSocket upgrade refused ({e.message})"
                raise error_for(e.status, message, cluster=self.name, call=request.call) from e
            except (aiohttp.ClientError, TimeoutError) as e:
                raise unreachable(self.name, request.call, e, maybe_sent=not _never_connected(e)) from e

        return await self._call(request, send)

    async def send(self, request: Request) -> KubeObject:
        """Send any prepared request and decode its JSON object answer."""
        return decode_object(await self._read(request), cluster=self.name, call=request.call)

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
        return decode_list(await self._read(request), cluster=self.name, call=request.call)

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

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> KubeObject:
        """Create a pod. A retried create whose first try landed answers AlreadyExists: names are unique."""
        return await self.create_object(rq.PODS, namespace, body)

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

    async def delete_pod(self, namespace: str, name: str, *, grace_seconds: int | None = None) -> KubeObject:
        return await self.delete_object(rq.PODS, namespace, name, grace_seconds=grace_seconds)

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
        return decode_token(await self._read(request), cluster=self.name, call=request.call)

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

    async def watch_stream(
        self, resource: Resource, namespace: str | None = None, *, resource_version: str = "",
        label_selector: str = "", field_selector: str = "",
    ) -> AsyncIterator[WatchEvent]:  # fmt: skip
        """One watch connection. Ends quietly when the server closes it or it goes silent for
        `watch_inactivity`; an expired resourceVersion raises Gone."""
        request = rq.prepare_watch(
            resource, namespace, resource_version=resource_version, label_selector=label_selector,
            field_selector=field_selector, timeout_seconds=self.timeouts.watch_seconds,
        )  # fmt: skip
        timeout = aiohttp.ClientTimeout(connect=self.timeouts.connect, sock_read=self.timeouts.watch_inactivity)
        try:
            async for line in self._lines(request, timeout, max_line=None):
                if line.strip():
                    yield decode_watch_line(line, cluster=self.name, call=request.call)
        except StreamSilent:
            log.debug("cluster %s: %s: silent for %ss, reconnecting", self.name, request.call, timeout.sock_read)

    async def _lines(
        self, request: Request, limits: aiohttp.ClientTimeout, *, max_line: int | None
    ) -> AsyncIterator[bytes]:
        batches = self._line_batches(request, limits, max_line=max_line)
        async with aclosing(batches):
            async for batch in batches:
                for line in batch:
                    yield line

    async def _line_batches(
        self, request: Request, limits: aiohttp.ClientTimeout, *, max_line: int | None = LOG_LINE_BYTES
    ) -> AsyncGenerator[list[bytes], None]:
        """The complete lines of each chunk read; longer than `max_line`, a line comes in pieces (None: whole)."""
        response = await self._open(request, limits)
        splitter = LineSplitter(max_line)
        try:
            async for chunk in response.content.iter_any():
                if lines := list(splitter.feed(chunk)):
                    yield lines
            if (tail := splitter.rest()) is not None:
                yield [tail]
        except TimeoutError as e:
            raise StreamSilent(f"cluster {self.name!r}: {request.call}: no data for {limits.sock_read}s") from e
        except aiohttp.ClientError as e:
            raise unreachable(self.name, request.call, e) from e
        finally:
            response.release()

    async def exec(
        self, namespace: str, pod: str, container: str, command: Sequence[str], *,
        protocols: tuple[str, ...] = rq.EXEC_PROTOCOLS,
    ) -> ExecResult:  # fmt: skip
        """Run `command` in a container (no stdin, no tty): (exit_code, stdout, stderr).
        The server picks the first of `protocols` it speaks (v5, else v4)."""
        request = replace(rq.prepare_exec(namespace, pod, container, command), websocket_protocols=protocols)
        collector = ExecCollector()
        ws = await self._open_ws(request)
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


class Headers(CIMultiDict[str]):
    """Request headers (a name may repeat, as Impersonate-Group does) whose repr (tracebacks,
    debuggers) never shows the Authorization value."""

    def __repr__(self) -> str:
        return repr([(k, "<redacted>" if k.lower() == "authorization" else v) for k, v in self.items()])


def _endpoint_suspect(error: KubeError) -> bool:
    """Failures a rotated endpoint explains: no connection (refused, TLS refused) or a 401 a fresh token
    did not cure (a rotated client certificate, or a CA the old token's issuer no longer matches)."""
    return isinstance(error, Unauthorized) or (isinstance(error, ApiUnreachable) and not error.maybe_sent)


def _never_connected(exc: BaseException) -> bool:
    """Whether the request certainly never reached the server (refused, TLS failure, connect timeout)."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
