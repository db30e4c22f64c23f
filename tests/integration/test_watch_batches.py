"""A watch's events a chunk at a time (`ClusterClient.watch_batches`, `watch_forever_batches`: what the gateway's
cluster watches consume) are the events `watch_stream` and `watch_forever` hand out one by one, in order, each once,
against the simulator over HTTPS on HTTP/2 and HTTP/1.1."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from gateway.clusters import kubeapi as k
from gateway.clusters.kubeapi import ClusterClient, EventType, WatchEvent
from gateway.clusters.kubeapi.watching import last_version, watch_forever_batches
from tests.integration.test_kubeapi_watch import PODS_IN_A, api, pod, sim, summary

__all__ = ["api", "sim"]  # the fixtures, shared with the one-by-one watch tests

PODS = 12


async def test_a_watchs_batches_are_its_events_in_order(api: ClusterClient) -> None:
    version = (await api.list_pods("team-a")).resource_version
    for i in range(PODS):
        await api.create_pod("team-a", pod(f"p{i}"))
    batches: list[list[WatchEvent]] = []
    async with asyncio.timeout(10), aclosing(api.watch_batches(k.PODS, "team-a", resource_version=version)) as stream:
        async for events in stream:
            batches.append([e for e in events if e.type is not EventType.BOOKMARK])
            if sum(map(len, batches)) >= PODS:
                break
    assert all(batches)  # never an empty list
    flat = [e for events in batches for e in events]
    assert summary(flat) == [("ADDED", f"p{i}") for i in range(PODS)]
    assert last_version(flat, version) == flat[-1].resource_version and last_version([], version) == version


async def test_watch_forever_batches_lists_then_follows(api: ClusterClient) -> None:
    await api.create_pod("team-a", pod("before"))
    seen: list[WatchEvent] = []
    async with asyncio.timeout(10), aclosing(watch_forever_batches(api, PODS_IN_A)) as stream:
        async for events in stream:
            seen += [e for e in events if e.type is not EventType.BOOKMARK]
            if seen[0].type is EventType.RELISTED and len(seen) == 1:
                await api.create_pod("team-a", pod("after"))
            if len(seen) == 2:
                break
    assert seen[0].type is EventType.RELISTED and [o["metadata"]["name"] for o in seen[0].objects] == ["before"]
    assert summary(seen[1:]) == [("ADDED", "after")]
