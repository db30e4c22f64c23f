"""`Transport`: the one place that does outbound I/O to one cluster's API server.

Every call goes through `_call`: it adds the bearer token, refreshes it once after a 401, maps failures to
the error tree and retries by the pure policy in `retry.py`. Requests ride HTTP/2 streams on shared
connections (http2.py) when the API server offers h2 in ALPN and no proxy is in the way; otherwise, and for
exec's WebSocket, one aiohttp session per cluster. Both trust exactly the endpoint's CA, and both answer
with the same errors. The Kubernetes verbs on top of it are in client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
from multidict import CIMultiDict

from gateway.clusters.kubeapi.bodies import Body, Http1Body, Http2Body
from gateway.clusters.kubeapi.errors import (
    ApiUnreachable,
    GatewayExhausted,
    KubeError,
    Unauthorized,
    error_for,
    parse_retry_after,
    unreachable,
)
from gateway.clusters.kubeapi.http2 import ERROR_BODY_BYTES, Http2Pool, Http2Refused, NotConnected
from gateway.clusters.kubeapi.http2_stream import Http2Stream
from gateway.clusters.kubeapi.pacing import DEFAULT_PACING, Lanes, Pacing
from gateway.clusters.kubeapi.request import Request
from gateway.clusters.kubeapi.retry import DEFAULT_RETRY, NO_RETRY, Draw, RetryPolicy, decide
from gateway.clusters.kubeapi.timeouts import DEFAULT_TIMEOUTS, Timeouts
from gateway.credentials import proxy as proxies
from gateway.credentials.base import CredentialError, CredentialProvider, Endpoint

log = logging.getLogger(__name__)

T = TypeVar("T")
USER_AGENT = "podgate/0.1"
Sleep = Callable[[float], Awaitable[None]]


class Reachability(Protocol):
    """The cluster's health as every call sees it (clusters/runtime.py keeps it)."""

    @property
    def down(self) -> bool: ...

    def report(self, error: KubeError | None, *, started: float | None = None) -> None:
        """One call's outcome; for a failure, when its attempt started (monotonic seconds): failures of attempts
        made together (a burst that waited for one connection attempt) are one piece of evidence."""


class Transport:
    """Authenticated, retried requests to one cluster; `read`, `open_stream` and `open_websocket` are its faces.
    `http2` (settings' `clusters.api_protocol`): requests but WebSockets ride HTTP/2 when the server offers h2."""

    def __init__(
        self,
        provider: CredentialProvider,
        *,
        name: str,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry_policy: RetryPolicy = DEFAULT_RETRY,
        sleep: Sleep = asyncio.sleep,
        draw: Draw = random.random,
        http2: bool = True,
        pacing: Pacing = DEFAULT_PACING,
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        self._provider = provider
        self._policy = retry_policy
        self._sleep = sleep
        self._draw = draw
        self._lanes = Lanes(pacing)  # requests of a bursty kind in flight at once (pacing.py)
        self._session: aiohttp.ClientSession | None = None
        self._endpoint: Endpoint | None = None
        self._base = ""
        self._server_hostname: str | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._http2 = http2
        self._pool: Http2Pool | None = None  # HTTP/2 connections to the current endpoint, made on first use
        self._proxied = False  # HTTP/2 is not tunnelled through proxies: requests there use HTTP/1.1
        # Told of every call's outcome, so calls that cannot reach the API server mark the cluster down (two
        # consecutive connection attempts failed, not waiting for the next probe), and asked before each retry:
        # a cluster known to be down is not retried, so its callers move on (a create fails over) without
        # spending the backoff. One failed attempt is retried: its waiters get a fresh one within their budget.
        self.reachability: Reachability | None = None

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def read(self, request: Request) -> bytes:
        """The whole body of a 2xx answer; reading it is part of the retried attempt (within `timeouts.request`)."""
        if self._may_use_http2():
            with contextlib.suppress(_UseHttp1):
                return await self._call(request, lambda _, headers: self._read_http2(request, headers))
        timeout = aiohttp.ClientTimeout(total=self.timeouts.request, connect=self.timeouts.connect)

        async def send(session: aiohttp.ClientSession, headers: Headers) -> bytes:
            async with await self._request(session, request, headers, timeout) as response:
                try:
                    return await response.read()
                except (aiohttp.ClientError, TimeoutError) as e:
                    raise unreachable(self.name, request.call, e) from e

        return await self._call(request, send)

    @property
    def over_http2(self) -> bool:
        """Whether requests ride shared HTTP/2 connections now (the server chose h2 in ALPN)."""
        return self._pool is not None and self._pool.negotiated and not self._pool.refused

    @property
    def http2_handshakes(self) -> int:
        """HTTP/2 connections opened to the current endpoint (benches count them)."""
        return self._pool.handshakes if self._pool is not None else 0

    async def open_stream(self, request: Request, limits: aiohttp.ClientTimeout) -> Body:
        """A 2xx answer's body, for streams (logs, watches); the caller releases it. An HTTP/2 stream on a
        connection shared with other requests, unless a proxy is in the way or the server chose HTTP/1.1 in
        ALPN (then, and from then on for this endpoint, an HTTP/1.1 connection of its own)."""
        if self._may_use_http2():
            with contextlib.suppress(_UseHttp1):
                return await self._call(request, lambda _, headers: self._stream_http2(request, headers, limits))
        response = await self._call(request, lambda session, headers: self._request(session, request, headers, limits))
        return Http1Body(response, self.name, request.call, limits.sock_read)

    async def open_websocket(self, request: Request) -> aiohttp.ClientWebSocketResponse:
        """A WebSocket upgraded with the request's subprotocols; the caller closes it."""

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

    def _http2_pool(self) -> Http2Pool | None:
        """The HTTP/2 connections to the current endpoint (new ones when it changed); None: use HTTP/1.1."""
        if self._proxied or self._endpoint is None:
            return None
        if self._pool is None or self._pool.endpoint != self._endpoint:
            if self._pool is not None:
                self._pool.close()  # a rotated endpoint: its streams fail and resume on the new one
            self._pool = Http2Pool(
                self._endpoint, connect_timeout=self.timeouts.connect, read_idle=self.timeouts.http2_read_idle,
                ping_timeout=self.timeouts.http2_ping,
            )  # fmt: skip
        return None if self._pool.refused else self._pool

    def _may_use_http2(self) -> bool:
        return self._http2 and not (self._pool is not None and self._pool.refused)

    async def _read_http2(self, request: Request, headers: Headers) -> bytes:
        try:
            async with asyncio.timeout(self.timeouts.request):
                stream = await self._open_http2(request, headers, None)
                try:
                    return await stream.body(None)
                finally:
                    stream.release()
        except (TimeoutError, ConnectionError) as e:
            raise unreachable(self.name, request.call, e) from e

    async def _stream_http2(self, request: Request, headers: Headers, limits: aiohttp.ClientTimeout) -> Body:
        stream = await self._open_http2(request, headers, limits.sock_read)
        return Http2Body(stream, self.name, request.call, limits.sock_read)

    async def _open_http2(self, request: Request, headers: Headers, inactivity: float | None) -> Http2Stream:
        """The request sent on a stream and its answer's status read: a 2xx stream, else the status's error."""
        pool = self._http2_pool()
        if pool is None:
            raise _UseHttp1()
        path = request.path + ("?" + urlencode(request.params, quote_via=quote) if request.params else "")
        try:
            stream = await pool.request(
                path, [("user-agent", USER_AGENT), *headers.items()], method=request.method, body=request.data()
            )
        except Http2Refused:
            log.info("cluster %s: the API server chose HTTP/1.1 in ALPN; requests use HTTP/1.1", self.name)
            raise _UseHttp1() from None
        except NotConnected as e:
            raise unreachable(self.name, request.call, e, maybe_sent=False) from e
        except ConnectionError as e:
            raise unreachable(self.name, request.call, e) from e
        try:
            status = await stream.response(inactivity)
            if status >= 400:
                body = await stream.read_all(ERROR_BODY_BYTES, inactivity)
                retry_after = parse_retry_after(stream.header(b"retry-after"))
                raise error_for(status, body, cluster=self.name, call=request.call, retry_after=retry_after)
        except (TimeoutError, ConnectionError) as e:
            stream.release()
            raise unreachable(self.name, request.call, e) from e
        except BaseException:
            stream.release()
            raise
        return stream

    def _new_session(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        # No pool limit: watches and followed logs each hold a connection for their lifetime, and
        # a full pool would stall every other call. Callers bound how many streams they open.
        proxy = proxies.proxy_for(endpoint.server, endpoint.proxy_url, os.environ)
        connector = proxies.connector(endpoint.ssl_context(), proxy, proxy_ca=endpoint.ca_data)
        self._base = endpoint.server.rstrip("/")
        self._server_hostname = endpoint.tls_server_name or None
        self._proxied = bool(proxy)
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
        started = time.monotonic()  # not get_running_loop().time(): a getpid() call each on Python 3.11
        while True:
            attempt += 1
            # Credentials first: after a 401 the forced refresh may renew an exec plugin's client
            # certificate too, and the session must then be the one presenting the new certificate.
            headers = await self._headers(request, force_refresh=force)
            session = await self._open_session()
            self._impersonate(headers)
            force = False
            sent = time.monotonic()
            try:
                async with self._lanes.slot(request):
                    sent = time.monotonic()  # the attempt starts once it has its slot
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
                self._report(e, sent)
                if isinstance(e, ApiUnreachable) and self.reachability is not None and self.reachability.down:
                    raise  # known down: the caller moves on (fails over) instead of spending the backoff
                elapsed = time.monotonic() - started
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
            self._report(None, sent)
            return answer

    def _report(self, error: KubeError | None, sent: float) -> None:
        """An answer (any HTTP status) proves the API server reachable; a connection that could not be made
        (refused, connect timeout, TLS) counts against it, once for every call that waited on that attempt, and
        two such attempts in a row mark it down (clusters/runtime.py HealthTracker). A connection cut after the
        request went out says little (a proxy, a lost answer), and the gateway's own exhaustion nothing: the
        probe judges those."""
        if self.reachability is None:
            return
        if not isinstance(error, ApiUnreachable | GatewayExhausted):
            self.reachability.report(None)
        elif isinstance(error, ApiUnreachable) and not error.maybe_sent:
            self.reachability.report(error, started=sent)

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


class _UseHttp1(Exception):
    """HTTP/2 is not to be had here (a proxy, ALPN chose HTTP/1.1): the stream goes over HTTP/1.1."""


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
