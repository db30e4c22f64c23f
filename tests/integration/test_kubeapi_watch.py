"""Watches against the simulator over HTTPS: one stream, list-then-watch, 410 relist, bookmarks,
inactivity, dropped watches and outages — nothing missed, no needless relist; on HTTP/2 (a stream on the
connection the client's other requests share) and on HTTP/1.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from gateway.clusters import kubeapi as k
from gateway.clusters.kubeapi import ClusterClient, EventType, Timeouts, WatchEvent, WatchTarget
from gateway.credentials.base import Endpoint
from gateway.credentials.static import StaticProvider
from gateway.sim.cluster import SimCluster
from gateway.sim.config import SimClusterSpec
from gateway.sim.store import DEFAULT_HISTORY

PODS_IN_A = WatchTarget(resource=k.PODS, namespace="team-a")


async def start(tmp_path: Path, **extra: Any) -> SimCluster:
    cluster = SimCluster(SimClusterSpec(name="kube-w", namespaces=("team-a",), **extra), kubeconfig_dir=tmp_path,
                         node_side=False)  # fmt: skip
    await cluster.start()
    return cluster


@pytest.fixture(params=["h2", "http/1.1"])
async def sim(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SimCluster]:
    cluster = await start(tmp_path, http2=request.param == "h2")
    try:
        yield cluster
        assert (cluster.http2_connections_accepted > 0) == (request.param == "h2")
    finally:
        await cluster.stop()


def client_for(cluster: SimCluster, **kwargs: Any) -> ClusterClient:
    endpoint = Endpoint(server=cluster.url, ca_data=cluster.ca_pem)
    return ClusterClient(StaticProvider(cluster.name, endpoint, cluster.admin_token), **kwargs)


@pytest.fixture
async def api(sim: SimCluster) -> AsyncIterator[ClusterClient]:
    async with client_for(sim) as client:
        yield client


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


def names(event: WatchEvent) -> list[str]:
    return sorted(o["metadata"]["name"] for o in event.objects)


async def take(events: AsyncIterator[WatchEvent], n: int, *, skip_bookmarks: bool = True) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async with asyncio.timeout(10):
        async for event in events:
            if skip_bookmarks and event.type is EventType.BOOKMARK:
                continue
            out.append(event)
            if len(out) == n:
                break
    return out


class Pump:
    """Consumes a watch in a task, as the gateway does, so it runs (and reconnects) while the test acts."""

    def __init__(self, events: AsyncGenerator[WatchEvent, None]) -> None:
        self.queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._events = events
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pump:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with aclosing(self._events) as events:
            async for event in events:
                if event.type is not EventType.BOOKMARK:
                    await self.queue.put(event)

    async def next(self) -> WatchEvent:
        async with asyncio.timeout(10):
            return await self.queue.get()


def summary(events: list[WatchEvent]) -> list[tuple[str, str]]:
    return [(e.type.value, e.object.get("metadata", {}).get("name", "")) for e in events]


async def test_one_stream_sees_changes_after_the_lists_version(api: ClusterClient) -> None:
    await api.create_pod("team-a", pod("before"))
    version = (await api.list_pods("team-a")).resource_version
    stream = api.watch_stream(k.PODS, "team-a", resource_version=version)
    async with aclosing(stream):
        await api.create_pod("team-a", pod("p"))
        current = await api.get_pod("team-a", "p")
        current["metadata"]["labels"] = {"changed": "yes"}
        await api.replace_object(k.PODS, "team-a", "p", current)
        await api.delete_pod("team-a", "p", grace_seconds=0)
        events = await take(stream, 3)
    assert summary(events) == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]
    assert int(events[-1].resource_version) > int(version)


async def test_list_then_watch_starts_with_the_full_state_then_follows(api: ClusterClient) -> None:
    for name in ("a", "b"):
        await api.create_pod("team-a", pod(name))
    events = k.list_then_watch(api, PODS_IN_A)
    async with aclosing(events):
        (relisted,) = await take(events, 1)
        assert relisted.type is EventType.RELISTED and names(relisted) == ["a", "b"]
        await api.delete_pod("team-a", "a", grace_seconds=0)
        assert summary(await take(events, 1)) == [("DELETED", "a")]


async def test_dropped_watch_resumes_from_its_version_without_relisting(api: ClusterClient, sim: SimCluster) -> None:
    events = k.list_then_watch(api, PODS_IN_A)
    async with aclosing(events):
        await take(events, 1)
        await api.create_pod("team-a", pod("one"))
        assert summary(await take(events, 1)) == [("ADDED", "one")]
        lists = sim.faults.count("list", "pods")
        assert sim.drop_watches() >= 1
        await api.create_pod("team-a", pod("two"))  # while no watch is open
        assert summary(await take(events, 1)) == [("ADDED", "two")]
        assert sim.faults.count("list", "pods") == lists


async def test_expired_version_raises_gone_and_list_then_watch_relists(api: ClusterClient, sim: SimCluster) -> None:
    await api.create_pod("team-a", pod("survivor"))
    old = (await api.list_pods("team-a")).resource_version
    sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "churn"}})
    for i in range(DEFAULT_HISTORY + 1):  # push `old` out of the server's history
        sim.store.mutate("namespaces", "", "churn", lambda o, i=i: o["metadata"].update(labels={"n": str(i)}))
    with pytest.raises(k.Gone, match="too old resource version"):
        await take(api.watch_stream(k.PODS, "team-a", resource_version=old), 1)
    events = k.list_then_watch(api, PODS_IN_A, resource_version=old)
    async with aclosing(events):
        (relisted,) = await take(events, 1)
    assert relisted.type is EventType.RELISTED and names(relisted) == ["survivor"]
    assert int(relisted.resource_version) > int(old)


async def test_bookmarks_advance_the_version_of_a_quiet_watch(tmp_path: Path) -> None:
    cluster = await start(tmp_path, bookmark_seconds=0.1)
    try:
        async with client_for(cluster) as api:
            version = (await api.list_pods("team-a")).resource_version
            cluster.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
            stream = api.watch_stream(k.PODS, "team-a", resource_version=version)
            async with aclosing(stream):
                (bookmark,) = await take(stream, 1, skip_bookmarks=False)
        assert bookmark.type is EventType.BOOKMARK
        assert int(bookmark.resource_version) > int(version)
    finally:
        await cluster.stop()


async def test_a_silent_stream_ends_quietly_after_the_inactivity_timeout(sim: SimCluster) -> None:
    async with client_for(sim, timeouts=Timeouts(watch_inactivity=0.3)) as api:
        version = (await api.list_pods("team-a")).resource_version
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(5):
            seen = [e async for e in api.watch_stream(k.PODS, "team-a", resource_version=version)]
        assert seen == []
        assert loop.time() - started >= 0.3


async def test_server_side_watch_timeout_reopens_without_relisting(sim: SimCluster) -> None:
    async with client_for(sim, timeouts=Timeouts(watch_seconds=1)) as api:
        async with Pump(k.list_then_watch(api, PODS_IN_A)) as pump:
            assert (await pump.next()).type is EventType.RELISTED
            await asyncio.sleep(1.5)  # the server ends the first watch after 1 s
            await api.create_pod("team-a", pod("later"))
            assert summary([await pump.next()]) == [("ADDED", "later")]
        assert sim.faults.count("list", "pods") == 1
        assert sim.faults.count("watch", "pods") >= 1  # requests are counted when they end


async def test_watch_forever_rides_out_an_outage_and_misses_nothing(sim: SimCluster) -> None:
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        await asyncio.sleep(0.05)

    async with client_for(sim, retry_policy=k.NO_RETRY) as api:
        await api.create_pod("team-a", pod("doomed"))
        async with Pump(k.watch_forever(api, PODS_IN_A, backoff=(0.0, 0.1), sleep=sleep, draw=lambda: 1.0)) as pump:
            assert names(await pump.next()) == ["doomed"]
            await asyncio.sleep(0.1)  # the watch is open
            await sim.outage()
            sim.store.delete("pods", "team-a", "doomed", grace_seconds=0)  # a change while unreachable
            await asyncio.sleep(0.5)
            await sim.restore()
            assert summary([await pump.next()]) == [("DELETED", "doomed")]
            await api.create_pod("team-a", pod("after"))
            assert summary([await pump.next()]) == [("ADDED", "after")]
        assert len(sleeps) >= 2 and sleeps[:2] == [0.0, 0.1]  # draw=1: the ceilings
        assert sim.faults.count("list", "pods") == 1  # resumed from its version: no relist


async def test_an_event_over_a_mebibyte_arrives_whole_and_the_watch_goes_on(sim: SimCluster) -> None:
    """One pod of ~1.5 MiB (etcd's limit) anywhere in the cluster must not freeze the cluster-wide watch
    (it was cut at 1 MiB, failed to decode, and the watch reconnected from the same version forever)."""
    big = pod("big")  # annotations are capped at 256 KiB; an env value is not (etcd's 1.5 MiB is the limit)
    big["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * (3 << 19)}]
    async with client_for(sim) as api, Pump(k.watch_forever(api, WatchTarget(resource=k.PODS))) as pump:
        assert (await pump.next()).type is EventType.RELISTED
        await api.create_pod("team-a", big)
        await api.create_pod("team-a", pod("small"))
        added = [await pump.next(), await pump.next()]
        assert summary(added) == [("ADDED", "big"), ("ADDED", "small")]
        assert added[0].object["spec"]["containers"][0]["env"] == big["spec"]["containers"][0]["env"]
        assert sim.faults.count("watch", "pods") == 0  # the first watch is still open: no reconnect
    async with client_for(sim) as api:  # and a relist carries it whole too
        listed = await api.list_all(k.PODS)
        assert {o["metadata"]["name"]: len(json.dumps(o)) > (3 << 19) for o in listed.items} == {
            "big": True, "small": False,
        }  # fmt: skip
