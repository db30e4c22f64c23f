"""A followed pod's changes wake its follower even when its log followers wait on the same track.

bench/replicas.py (2 replicas, 300 pods) saw results stored exactly 30 s (the follower's idle wait) after
Running, with the cores idle: the log follower, whose stream had ended before the container did, waited for
a change with the follower's own `PodTrack.wait`, and cleared the pod's end that came while the follower was
storing Running; the follower then slept out its idle wait. The store is the real SQLite store, its Running
write held for the test; the cluster is the fake of our protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway import domain
from gateway.pods.creation import Creator
from gateway.pods.following import Follower
from gateway.pods.journal import Journal
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import SqlStore
from tests.unit.pod_fakes import FakeCluster, FakeClusters, journalled, pod_request, submitted

WITHIN = 10.0  # bounds a failure only: the lost wake-up below would wait for the cluster's safety net (none here)


class HeldRunning:
    """The real store; the write of the Running phase waits until released (a store under load)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def record_phase(self, request_id: str, phase: domain.PodPhase, **kwargs: Any) -> domain.PodRecord:
        if phase is domain.PodPhase.RUNNING:
            self.holding.set()
            await self.release.wait()
        return await self.store.record_phase(request_id, phase, **kwargs)


@pytest.fixture
async def held(tmp_path: Path) -> AsyncIterator[HeldRunning]:
    store = HeldRunning(await SqlStore.open(path=tmp_path / "gateway.sqlite"))
    yield store
    await store.store.close()


def with_status(cluster: FakeCluster, name: str, phase: str, state: dict[str, Any]) -> None:
    pod = cluster.pods[("default", name)]
    cluster.set_pod("default", name, {**pod, "status": {"phase": phase, "containerStatuses": [{"name": "base", "state": state}]}})


async def turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_pods_end_while_its_running_phase_is_stored_wakes_the_follower_at_once(
    held: HeldRunning,
) -> None:
    journal = Journal(held)  # type: ignore[arg-type]
    cluster = FakeCluster("a")
    clusters = FakeClusters({"a": cluster})
    settings = LiveSettings(Settings())
    state = await submitted(held.store, pod_request())
    await Creator(clusters, held, journal, settings).place_and_create(state)  # type: ignore[arg-type]
    name = state.record.name
    try:
        with_status(cluster, name, "Running", {"running": {}})  # no log line yet: its stream ends at once
        follow = asyncio.create_task(Follower(clusters, held, journal, settings).follow(state))  # type: ignore[arg-type]
        async with asyncio.timeout(WITHIN):
            await held.holding.wait()
        await turns()  # the log follower has found the stream empty and waits for a change
        cluster.logs["base"] = ["2026-12-05T00:00:00Z done"]
        with_status(cluster, name, "Succeeded", {"terminated": {"exitCode": 0, "reason": "Completed"}})
        await turns()  # the log follower sees the change
        held.release.set()
        async with asyncio.timeout(WITHIN):
            ending = await follow
        assert ending.result.phase is domain.PodPhase.SUCCEEDED
        lines = [i for i in await journalled(held.store, journal, state.request_id) if isinstance(i, domain.LogLine)]
        assert [line.text for line in lines] == ["done"]  # the line written as the container ended, read once
    finally:
        await journal.close()
