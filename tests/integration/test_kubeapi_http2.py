"""Requests over HTTP/2 against the simulator (real HTTPS, ALPN, h2 on both sides): streams share connections
up to the server's 100, one connection attempt serves every request waiting for it, a GOAWAY or a refusal of h2
leaves the client working, and a slow reader holds at most one flow-control window per stream. The same log tests on both protocols are in
test_kubeapi_streams.py; the gateway's resume across a GOAWAY is in tests/e2e/test_faults.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from gateway.clusters import kubeapi as k
from gateway.clusters.kubeapi import ClusterClient, EventType, WatchTarget, http2
from gateway.clusters.kubeapi.http2 import STREAM_WINDOW, Http2Pool
from gateway.clusters.kubeapi.http2_stream import Http2Stream
from gateway.clusters.runtime import HealthTracker
from gateway.credentials.base import Endpoint
from gateway.credentials.static import StaticProvider
from gateway.domain import ClusterHealth
from gateway.sim import http2 as sim_http2
from gateway.sim.cluster import SimCluster
from gateway.sim.config import NodeSpec, SimClusterSpec, cluster_from_dict
from tests.integration.test_kubeapi import RotatedProvider
from tests.integration.test_kubeapi_streams import python_pod, wait_for

NS = "default"
NODE = NodeSpec(name="n1", allocatable={"cpu": "8", "memory": "16Gi", "pods": "110"})


async def started(tmp_path: Path) -> SimCluster:
    spec = SimClusterSpec(name="kube-h2", nodes=(NODE,), runtime={"isolation": False})
    cluster = SimCluster(spec, kubeconfig_dir=tmp_path)
    await cluster.start()
    return cluster


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimCluster]:
    cluster = await started(tmp_path)
    try:
        yield cluster
    finally:
        await cluster.stop()


def endpoint(sim: SimCluster) -> Endpoint:
    return Endpoint(server=sim.url, ca_data=sim.ca_pem)


@pytest.fixture
async def api(sim: SimCluster) -> AsyncIterator[ClusterClient]:
    async with ClusterClient(StaticProvider(sim.name, endpoint(sim), sim.admin_token)) as client:
        yield client


async def eventually(check: Callable[[], Any], what: str, within: float = 30.0) -> None:
    """Polls `check` until true (`what` it waits for, for the reader); the deadline only bounds a failure."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - state of our own objects and the simulator's, no event to wait on
            await asyncio.sleep(0.02)


LONG = "import time\nprint('first', flush=True)\ntime.sleep(60)"


async def test_150_followed_logs_ride_2_connections(api: ClusterClient, sim: SimCluster) -> None:
    """kube-apiserver allows 100 streams a connection: the 101st log opens a second connection, not a 101st."""
    await api.create_pod(NS, python_pod("long", LONG))
    await wait_for(api, "long", {"Running"})
    first_lines: list[str] = []
    release = asyncio.Event()

    async def follow() -> None:
        async with aclosing(api.stream_logs(NS, "long", follow=True)) as lines:
            async for line in lines:
                first_lines.append(line)
                await release.wait()
                return

    followers = [asyncio.create_task(follow()) for _ in range(150)]
    await eventually(lambda: len(first_lines) == 150, "every log's first line")
    assert first_lines == ["first"] * 150
    assert sim.http2_connections() == 2 and sim.http2_connections_accepted == 2
    assert api.over_http2
    release.set()
    await asyncio.gather(*followers)
    await api.delete_pod(NS, "long", grace_seconds=0)


async def test_a_server_that_offers_only_http1_gets_http1_streams(tmp_path: Path) -> None:
    """A cluster file's `sim.http2: false` makes a simulated cluster offer HTTP/1.1 only in ALPN."""
    spec = cluster_from_dict({"name": "kube-h1", "sim": {"http2": False, "runtime": {"isolation": False},
                                                         "nodes": [{"name": "n1"}]}})  # fmt: skip
    assert spec.http2 is False
    sim = SimCluster(spec, kubeconfig_dir=tmp_path)
    await sim.start()
    try:
        async with ClusterClient(StaticProvider(sim.name, endpoint(sim), sim.admin_token)) as api:
            await api.create_pod(NS, python_pod("one", "print('a'); print('b')"))
            await wait_for(api, "one", {"Succeeded"})
            for _ in range(2):  # ALPN asked once; the second stream goes straight to HTTP/1.1
                async with asyncio.timeout(30):
                    assert [line async for line in api.stream_logs(NS, "one", follow=True)] == ["a", "b"]
            assert not api.over_http2
        assert sim.http2_connections_accepted == 0
    finally:
        await sim.stop()


async def test_a_goaway_cuts_the_stream_and_the_next_one_opens_a_new_connection(
    api: ClusterClient, sim: SimCluster
) -> None:
    await api.create_pod(NS, python_pod("long", LONG))
    await wait_for(api, "long", {"Running"})
    seen: list[str] = []
    with pytest.raises(k.ApiUnreachable, match=r"GOAWAY|connection"):
        async with asyncio.timeout(30), aclosing(api.stream_logs(NS, "long", follow=True)) as lines:
            async for line in lines:
                seen.append(line)
                assert sim.goaway() == 1
    assert seen == ["first"]
    async with asyncio.timeout(30), aclosing(api.stream_logs(NS, "long", follow=True)) as lines:
        assert await anext(lines) == "first"
    assert sim.http2_connections_accepted == 2
    await api.delete_pod(NS, "long", grace_seconds=0)


async def test_a_slow_reader_holds_one_window_and_then_gets_every_line(api: ClusterClient, sim: SimCluster) -> None:
    """Flow control: a stream's data is acknowledged only as it is read, so a reader that stops leaves the server
    waiting (its handler paused) with one window unread here, however much the container writes meanwhile."""
    lines, width = 20_000, 99
    await api.create_pod(NS, python_pod("chatty", f"for i in range({lines}): print(str(i).rjust({width}, '.'))"))
    await wait_for(api, "chatty", {"Running", "Succeeded"})
    pool = Http2Pool(endpoint(sim), connect_timeout=5)
    try:
        stream = await pool.request(
            f"/api/v1/namespaces/{NS}/pods/chatty/log?follow=true", [("authorization", f"Bearer {sim.admin_token}")]
        )
        assert await stream.response(10) == 200
        received = bytearray(await stream.read(10))
        # The server sends until the window is spent: what was read is acknowledged, but h2 sends the
        # WINDOW_UPDATE only once half a window is consumed, so the server stops at one window in all.
        await eventually(lambda: stream.unread + len(received) >= STREAM_WINDOW, "the server used the window")
        await wait_for(api, "chatty", {"Succeeded"})  # all 2 MB of the log is written by now
        await sim_http2_settle(sim)
        assert stream.unread <= STREAM_WINDOW, "nothing past the window while unread"
        async with asyncio.timeout(60):
            while chunk := await stream.read(10):
                received += chunk
        assert received.decode().splitlines() == [str(i).rjust(width, ".") for i in range(lines)]
    finally:
        pool.close()
    await api.delete_pod(NS, "chatty", grace_seconds=0)


async def sim_http2_settle(sim: SimCluster) -> None:
    """A round trip on a second connection: by its answer, the simulator has run whatever was ready to run."""
    pool = Http2Pool(endpoint(sim), connect_timeout=5)
    try:
        probe = await pool.request("/version", [("authorization", f"Bearer {sim.admin_token}")])
        assert await probe.response(10) == 200
    finally:
        pool.close()


async def test_other_paths_over_http2_get_the_same_answers_as_over_http1(sim: SimCluster) -> None:
    """kubectl speaks HTTP/2 for everything: the simulator serves every path over it through the same pipeline
    (authentication, RBAC, the request log), not only logs."""
    pool = Http2Pool(endpoint(sim), connect_timeout=5)
    sim.add_static_token("viewer-token", "viewer")

    async def get(path: str, token: str) -> tuple[int, bytes]:
        stream = await pool.request(path, [("authorization", f"Bearer {token}")])
        status = await stream.response(10)
        return status, await stream.read_all(1 << 20, 10)

    try:
        status, body = await get("/api/v1/namespaces/default/pods", sim.admin_token)
        assert status == 200 and b'"PodList"' in body
        assert (await get("/api/v1/namespaces/default/pods", "wrong"))[0] == 401
        status, body = await get("/api/v1/namespaces/default/pods", "viewer-token")
        assert status == 403 and b'User \\"viewer\\" cannot list' in body
        assert (await get("/api/v1/namespaces/default/pods/ghost/log", sim.admin_token))[0] == 404
    finally:
        pool.close()
    assert sim.request_counts()[("list", "pods")] == 2 and sim.request_counts()[("get", "pods/log")] == 1
    assert sim_http2.MAX_CONCURRENT_STREAMS == 100



async def test_a_401_on_an_http2_log_refreshes_the_token_once_in_the_one_outbound_path(
    api: ClusterClient, sim: SimCluster
) -> None:
    """The HTTP/2 stream is sent by the same `Transport._call` as every request: a 401 refreshes the token and
    the log is asked again, on the same connection."""
    await api.create_pod(NS, python_pod("one", "print('a')"))
    await wait_for(api, "one", {"Succeeded"})
    provider = RotatedProvider(sim.name, endpoint(sim), stale="expired-token", fresh=sim.admin_token)
    async with ClusterClient(provider) as client:
        async with asyncio.timeout(30):
            assert [line async for line in client.stream_logs(NS, "one")] == ["a"]
        assert client.over_http2 and client.http2_handshakes == 1
    assert provider.refreshes == 1
    assert [r.code for r in sim.faults.log if r.path.endswith("/pods/one/log")] == [401, 200]
    assert sim.http2_connections_accepted == 2  # the admin client's (create, reads) and this one's


async def test_http2_clients_that_leave_leave_no_handler_and_no_error(
    api: ClusterClient, sim: SimCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Streams cancelled right after asking or mid-answer, and a connection dropped with streams open: each
    stream's aiohttp handler hears of it and ends (none left behind), and nothing is logged as an error."""
    await api.create_pod(NS, python_pod("long", LONG))
    await wait_for(api, "long", {"Running"})
    path = f"/api/v1/namespaces/{NS}/pods/long/log?follow=true"
    auth = [("authorization", f"Bearer {sim.admin_token}")]
    pool = Http2Pool(endpoint(sim), connect_timeout=5)
    try:
        at_once = [await pool.request(path, auth) for _ in range(20)]
        for stream in at_once:
            stream.release()  # RST_STREAM before any answer
        answered = [await pool.request(path, auth) for _ in range(20)]
        for stream in answered:
            assert await stream.response(10) == 200
            assert await stream.read(10) == b"first\n"
            stream.release()  # RST_STREAM mid-answer
        open_streams = [await pool.request(path, auth) for _ in range(10)]
        assert [await s.response(10) for s in open_streams] == [200] * 10
        await eventually(lambda: sim.http2_handlers_open() == 10, "only the open streams' handlers")
    finally:
        pool.close()  # a GOAWAY and the connection closed with 10 streams open
    # every handler gone, and the pool's connection; the `api` client's own (its create and watch) stays open
    await eventually(lambda: sim.http2_handlers_open() == 0 and sim.http2_connections() == 1, "every handler gone")
    assert await api.get_version()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    await api.delete_pod(NS, "long", grace_seconds=0)


def parked(name: str) -> dict[str, Any]:
    """A pod no node takes: it stays Pending, so creating and deleting it is all the API work."""
    return {"metadata": {"name": name}, "spec": {"nodeSelector": {"nowhere": "true"},
                                                 "containers": [{"name": "main", "image": "busybox"}]}}  # fmt: skip


async def test_concurrent_creates_reads_deletes_and_a_watch_share_one_connection(
    api: ClusterClient, sim: SimCluster
) -> None:
    """Every request but exec's WebSocket rides HTTP/2: 60 creates, reads and deletes at once, with a watch and a
    followed log open meanwhile, are streams on the client's one connection (HTTP/1.1 would open one a call)."""
    names = [f"p{i}" for i in range(60)]
    target = WatchTarget(resource=k.PODS, namespace=NS)
    added: set[str] = set()
    async with aclosing(k.list_then_watch(api, target)) as events:
        assert (await anext(events)).type is EventType.RELISTED
        await asyncio.gather(*(api.create_pod(NS, parked(name)) for name in names))
        read = await asyncio.gather(*(api.get_pod(NS, name) for name in names))
        assert [pod["metadata"]["name"] for pod in read] == names
        async with asyncio.timeout(30):
            async for event in events:
                added |= {event.object["metadata"]["name"]} if event.type is EventType.ADDED else set()
                if added == set(names):
                    break
        await asyncio.gather(*(api.delete_pod(NS, name, grace_seconds=0) for name in names))
    assert (await api.list_pods(NS)).items == ()
    assert sim.http2_connections_accepted == 1 and api.http2_handshakes == 1
    assert sim.request_counts()[("create", "pods")] == 60 and sim.request_counts()[("delete", "pods")] == 60


async def test_an_unresponsive_server_is_tried_once_for_all_the_requests_waiting(sim: SimCluster) -> None:
    """A server that accepts TCP and never answers TLS: 30 requests at once wait for one connection attempt and
    all fail with it (not sent, so a create may go elsewhere), rather than each making (or queueing) its own."""
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    provider = StaticProvider(sim.name, Endpoint(server=f"https://127.0.0.1:{port}", ca_data=sim.ca_pem), "t")
    try:
        async with ClusterClient(provider, timeouts=k.Timeouts(connect=0.5), retry_policy=k.NO_RETRY) as client:
            outcomes = await asyncio.gather(*(client.get_version() for _ in range(30)), return_exceptions=True)
            assert client.http2_handshakes == 1
        assert all(isinstance(e, k.ApiUnreachable) and e.maybe_sent is False for e in outcomes), outcomes
        assert len(accepted) == 1
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_a_connection_whose_stream_ids_are_spent_takes_no_new_stream(
    sim: SimCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stream ids are 31 bits and never reused: a connection that used them up (after ~10^9 requests; here the
    limit is lowered to 9) lets its open streams run on and new requests go to a new connection."""
    monkeypatch.setattr(http2, "LAST_STREAM_ID", 9)
    async with ClusterClient(StaticProvider(sim.name, endpoint(sim), sim.admin_token)) as api:
        await api.create_pod(NS, python_pod("long", "import time\nfor i in range(3):\n    print(i, flush=True)\n"
                                                    "    time.sleep(0.5)"))  # fmt: skip
        await wait_for(api, "long", {"Running"})  # stream ids 1 (create), 3 (list), 5 (watch)
        async with asyncio.timeout(30), aclosing(api.stream_logs(NS, "long", follow=True)) as lines:  # id 7
            assert await anext(lines) == "0"
            assert (await api.get_pod(NS, "long"))["metadata"]["name"] == "long"  # id 1 of a new connection
            assert [line async for line in lines] == ["1", "2"]
        assert api.http2_handshakes == 2
    assert sim.http2_connections_accepted == 2


class Relay:
    """A TCP relay in front of the simulator that can freeze: bytes stop flowing both ways and nothing is closed,
    as when a peer vanishes (a node gone, a NAT entry forgotten) without FIN or RST."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.frozen = False
        self.server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Relay:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.frozen:  # frozen: read and dropped, so the sender sees no back-pressure either
                writer.write(data)
        writer.close()


async def test_a_connection_gone_dead_is_pinged_and_dropped_and_its_watch_fails_at_once(sim: SimCluster) -> None:
    """client-go's HTTP/2 health check: nothing read for `http2_read_idle`, a PING; no answer within `http2_ping`,
    the connection is dropped, so a watch on it fails (and resumes elsewhere) instead of waiting out its 330 s,
    and the next request makes a new connection instead of waiting on the dead one."""
    timeouts = k.Timeouts(http2_read_idle=0.3, http2_ping=0.3)
    async with Relay(sim.port) as relay:
        provider = StaticProvider(sim.name, Endpoint(server=relay.url, ca_data=sim.ca_pem), sim.admin_token)
        async with ClusterClient(provider, timeouts=timeouts) as api:
            version = (await api.list_pods(NS)).resource_version
            async with aclosing(api.watch_stream(k.PODS, NS, resource_version=version)) as events:
                first = asyncio.create_task(anext(events))  # the watch is asked for, and answered: 200, no event
                await asyncio.sleep(1.0)  # idle past read_idle several times: PINGs answered, the watch stays
                assert not first.done()
                relay.frozen = True
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(k.ApiUnreachable, match="PING"):
                    async with asyncio.timeout(30):
                        await first
                assert loop.time() - started < 5
            relay.frozen = False
            assert (await api.list_pods(NS)).items == ()
            assert api.http2_handshakes == 2


class ConnectsIntoABurst(Http2Pool):
    """A pool whose first connection attempt, as it ends, is followed in the same loop turn by `burst` requests:
    a burst of creates woken together, which run before the attempt's done callback (which is queued after them)."""

    def __init__(self, sim: SimCluster, burst: int) -> None:
        super().__init__(endpoint(sim), connect_timeout=5)
        self.token, self.burst = sim.admin_token, burst
        self.opened: list[asyncio.Task[Http2Stream]] = []

    async def _connect(self) -> http2.Http2Connection:
        connection = await super()._connect()
        count, self.burst = self.burst, 0  # the first attempt's end only
        loop = asyncio.get_running_loop()
        self.opened += [loop.create_task(self.request("/version", self.headers())) for _ in range(count)]
        return connection

    def headers(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]


@pytest.mark.timeout(60)  # the old pool spun in one loop turn for ever: only pytest-timeout's signal ends it
async def test_a_burst_that_fills_a_new_connection_before_its_attempt_is_forgotten_opens_another(
    sim: SimCluster,
) -> None:
    """101 requests ready in the loop turn in which a connection attempt ended, before its done callback ran: the
    first 100 fill the new connection, and the 101st found the finished attempt still recorded as under way,
    awaited it (a done task: no yield) and looked again, for ever, with the gateway's loop at 100 % of a core
    (seen in bench/dispatch.py throughput). It makes a second connection instead."""
    pool = ConnectsIntoABurst(sim, burst=sim_http2.MAX_CONCURRENT_STREAMS + 1)
    try:
        first = await pool.request("/version", pool.headers())
        async with asyncio.timeout(30):
            streams = [first, *await asyncio.gather(*pool.opened)]
            statuses = await asyncio.gather(*(stream.response(10) for stream in streams))
        assert statuses == [200] * (sim_http2.MAX_CONCURRENT_STREAMS + 2)
        assert pool.handshakes == 2 and pool.connections == 2
    finally:
        pool.close()


class Health:
    """The cluster's health as the gateway keeps it (clusters/runtime.py), told of every call by the client."""

    def __init__(self) -> None:
        self.tracker = HealthTracker()
        self.tracker.observe(None)  # reached once, as a running cluster was

    @property
    def down(self) -> bool:
        return self.tracker.state is ClusterHealth.UNREACHABLE

    def report(self, error: k.KubeError | None, **attempt: Any) -> None:
        self.tracker.observe(error, **attempt)


@pytest.fixture
async def watched(sim: SimCluster) -> AsyncIterator[tuple[ClusterClient, Health]]:
    """A client with a short connect timeout whose every call tells `Health`, as the gateway's do."""
    health = Health()
    provider = StaticProvider(sim.name, endpoint(sim), sim.admin_token)
    async with ClusterClient(provider, timeouts=k.Timeouts(connect=0.5)) as client:
        client.reachability = health
        yield client, health


async def test_a_burst_whose_connection_attempt_timed_out_gets_a_fresh_one_and_the_cluster_stays_up(
    sim: SimCluster, watched: tuple[ClusterClient, Health]
) -> None:
    """An API server too busy to answer one ClientHello in time: the 40 requests that waited on that attempt are
    one piece of evidence, not 40; the cluster is not marked down, and the retry's fresh attempt serves every one
    of them (before, the first timeout marked the cluster down at once and a cluster known to be down is not
    retried: all 40 failed together)."""
    client, health = watched
    sim.stall_handshakes(1)
    answers = await asyncio.gather(*(client.list_nodes() for _ in range(40)))
    assert client.http2_handshakes == 2 and sim.http2_connections_accepted == 1
    assert [len(a.items) for a in answers] == [1] * 40 and not health.down


async def test_two_connection_attempts_failed_in_a_row_mark_the_cluster_down(
    sim: SimCluster, watched: tuple[ClusterClient, Health]
) -> None:
    """The evidence that marks a cluster down: a fresh attempt, begun after the first failed, failed too."""
    client, health = watched
    sim.stall_handshakes(2)
    outcomes = await asyncio.gather(*(client.list_nodes() for _ in range(10)), return_exceptions=True)
    assert client.http2_handshakes == 2
    assert all(isinstance(e, k.ApiUnreachable) and e.maybe_sent is False for e in outcomes), outcomes
    assert health.down
