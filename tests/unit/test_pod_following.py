"""Following with fakes of our cluster protocol: a created pod is followed through its track to an `Ending`.

The fake cluster's watch is driven by the test (`set_pod`, `add_event`); the follower returns how the
run ends and which cluster the finish action may act through, and never re-creates or deletes a pod.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import domain
from gateway.pods import builder, status
from gateway.pods.creation import Creator
from gateway.pods.following import Follower
from gateway.pods.journal import Journal
from gateway.pods.runstate import Ending, RunState
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import SqlStore
from tests.unit.pod_fakes import FakeCluster, FakeClusters, journalled, opened_store, pod_request, submitted

WITHIN = 10.0  # seconds a follower may take to notice a change (it wakes on changes, so far less)


@dataclass
class World:
    store: SqlStore
    journal: Journal
    clusters: FakeClusters
    cluster: FakeCluster

    def follower(self) -> Follower:
        return Follower(self.clusters, self.store, self.journal, LiveSettings(Settings()))

    async def created(self, **request: Any) -> RunState:
        """A request whose pod the fake cluster holds (created through the real creation phase)."""
        state = await submitted(self.store, pod_request(**request))
        await Creator(self.clusters, self.store, self.journal, LiveSettings(Settings())).place_and_create(state)
        return state

    def change(self, state: RunState, phase: str, **status: Any) -> None:
        """The pod as the watch reports it next: `phase` and container statuses."""
        pod = dict(self.cluster.pods.get(("default", state.record.name)) or {})
        pod["status"] = {"phase": phase, **status}
        self.cluster.set_pod("default", state.record.name, pod)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store, journal = await opened_store(tmp_path)
    cluster = FakeCluster("a")
    yield World(store, journal, FakeClusters({"a": cluster}), cluster)
    await journal.close()
    await store.close()


def running(name: str = "base") -> dict[str, Any]:
    return {"name": name, "state": {"running": {"startedAt": "2026-12-04T10:00:00Z"}}}


def ended(name: str = "base", code: int = 0, message: str | None = None, reason: str = "Completed") -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": code, "reason": reason}
    if message is not None:
        terminated["message"] = message
    return {"name": name, "state": {"terminated": terminated}}


def stamped(i: int) -> str:
    return f"2026-12-04T10:00:0{i}.000000000Z line {i}"


async def followed(world: World, state: RunState) -> asyncio.Task[Ending]:
    task = asyncio.create_task(world.follower().follow(state))
    await asyncio.sleep(0.05)  # the follower is waiting on the track
    return task


async def test_a_pod_followed_to_success_streams_phase_and_logs_and_returns_its_xcom(world: World) -> None:
    state = await world.created(xcom_mode=domain.XcomMode.AUTO)
    world.cluster.logs["base"] = [stamped(i) for i in range(3)]
    task = await followed(world, state)
    world.change(state, "Running", containerStatuses=[running()])
    await asyncio.sleep(0.1)
    world.change(state, "Succeeded", containerStatuses=[ended(message='{"answer": 42}')])
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending.cluster is world.cluster
    assert (ending.result.phase, ending.result.exit_code, ending.result.xcom_json) == (
        domain.PodPhase.SUCCEEDED, 0, '{"answer": 42}',
    )  # fmt: skip
    items = await journalled(world.store, world.journal, "r1")
    phases = [i.phase for i in items if isinstance(i, domain.PhaseChange)]
    assert phases == [domain.PodPhase.RUNNING]  # the end is reported by the result, stored by the coordinator
    assert [i.text for i in items if isinstance(i, domain.LogLine)] == ["line 0", "line 1", "line 2"]
    assert state.record.phase is domain.PodPhase.RUNNING
    assert world.cluster.tracks == {} and state.track is None  # released once followed
    assert world.cluster.pods and world.cluster.deletes == []  # deleting is the finish action's, not following's


async def test_a_failed_pod_carries_its_warning_events_and_no_xcom(world: World) -> None:
    state = await world.created(xcom_mode=domain.XcomMode.AUTO)
    task = await followed(world, state)
    backoff = domain.KubernetesEvent(time=datetime.now(UTC), type="Warning", reason="BackOff", message="back-off")
    normal = domain.KubernetesEvent(time=datetime.now(UTC), type="Normal", reason="Pulled", message="pulled")
    world.cluster.tracks[("default", state.record.name)].add_event(("u1", 1), normal)
    world.cluster.tracks[("default", state.record.name)].add_event(("u2", 1), backoff)
    world.change(state, "Failed", containerStatuses=[ended(code=3, message="boom", reason="Error")])
    ending = await asyncio.wait_for(task, WITHIN)
    assert (ending.result.phase, ending.result.exit_code, ending.result.reason) == (domain.PodPhase.FAILED, 3, "Error")
    assert ending.result.xcom_json is None  # a failed main container's message is not an XCom payload
    assert ending.result.warning_events == (backoff,)
    items = await journalled(world.store, world.journal, "r1")
    assert [i for i in items if isinstance(i, domain.KubernetesEvent)] == [normal, backoff]


async def test_sidecar_xcom_is_read_then_the_sidecar_is_stopped(world: World) -> None:
    state = await world.created(xcom_mode=domain.XcomMode.SIDECAR)
    world.cluster.exec_stdout = b'{"rows": 7}'
    task = await followed(world, state)
    world.change(state, "Running", containerStatuses=[ended(), running(builder.XCOM_SIDECAR_NAME)])
    ending = await asyncio.wait_for(task, WITHIN)
    assert (ending.result.phase, ending.result.xcom_json) == (domain.PodPhase.SUCCEEDED, '{"rows": 7}')
    assert [container for container, _ in world.cluster.execs] == [builder.XCOM_SIDECAR_NAME] * 2
    assert "cat" in world.cluster.execs[0][1][-1] and "kill" in world.cluster.execs[1][1][-1]


async def test_cancel_ends_following_with_the_cluster_to_delete_through(world: World) -> None:
    state = await world.created()
    task = await followed(world, state)
    world.change(state, "Running", containerStatuses=[running()])
    await asyncio.sleep(0.05)
    state.cancel("test says stop")
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending == Ending(
        domain.PodResult(phase=domain.PodPhase.CANCELLED, reason="Cancelled", message="test says stop"), world.cluster
    )


async def test_a_pod_deleted_outside_the_gateway_ends_without_a_cluster(world: World) -> None:
    state = await world.created()
    task = await followed(world, state)
    world.cluster.set_pod("default", state.record.name, None)
    ending = await asyncio.wait_for(task, WITHIN)
    assert (ending.result.reason, ending.cluster) == ("PodDeleted", None)


async def test_a_pod_never_seen_is_asked_for_and_not_recreated(world: World) -> None:
    state = await world.created()
    world.cluster.tracks.clear()  # a restarted gateway: nothing tracked yet
    world.cluster.pods.clear()  # deleted while the gateway was down: the synced watch never shows it
    ending = await asyncio.wait_for(world.follower().follow(state), WITHIN)
    assert (ending.result.reason, ending.cluster) == ("PodDeleted", None)
    assert world.cluster.creates == [state.record.name]  # only the creation phase's create


async def test_a_replaced_cluster_runtime_is_followed_through_the_new_one(world: World) -> None:
    state = await world.created()
    task = await followed(world, state)
    replacement = FakeCluster("a", pods=dict(world.cluster.pods))
    world.clusters.clusters["a"] = replacement
    world.cluster.tracks[("default", state.record.name)].poke()  # as the registry does on an update
    await asyncio.sleep(0.05)
    world.cluster = replacement
    world.change(state, "Succeeded", containerStatuses=[ended()])
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending.cluster is replacement and ending.result.phase is domain.PodPhase.SUCCEEDED


async def test_a_deregistered_cluster_ends_the_run_with_its_warnings(world: World) -> None:
    state = await world.created()
    task = await followed(world, state)
    del world.clusters.clusters["a"]
    world.cluster.tracks[("default", state.record.name)].poke()
    ending = await asyncio.wait_for(task, WITHIN)
    assert (ending.result.reason, ending.cluster) == ("ClusterDeregistered", None)


async def test_a_pod_that_does_not_start_in_time_ends_as_startup_timeout(world: World) -> None:
    state = await world.created(startup_timeout_seconds=0.2)
    world.change(state, "Pending")
    ending = await asyncio.wait_for(world.follower().follow(state), WITHIN)
    assert (ending.result.reason, ending.cluster) == ("StartupTimeout", world.cluster)
    assert ending.result.message.startswith("pod did not start within 0.2s")


async def running_recorded(state: RunState) -> None:
    """Until the follower has stored Running: it then waits on its track in the same step."""
    for _ in range(int(WITHIN / 0.01)):  # the store's write is real I/O: polled, bounded
        if state.record.phase is domain.PodPhase.RUNNING:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"Running not stored within {WITHIN:g} s")


async def turns(n: int = 20) -> None:
    """Loop turns enough for a woken follower to run to its next wait (no I/O on that path)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_safety_poke_with_nothing_new_does_not_look_at_the_pod_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 followed pods are poked every SAFETY_WAKE_SECONDS: each poke of an unchanged running pod costs
    a wake-up, not another reading of its status, its log followers and its phase (issue 16)."""
    looks: list[object] = []
    interpret = status.interpret
    monkeypatch.setattr(status, "interpret", lambda pod: looks.append(pod) or interpret(pod))
    state = await world.created()
    task = await followed(world, state)
    world.change(state, "Running", containerStatuses=[running()])
    await running_recorded(state)  # the follower waits on its track again
    track = world.cluster.tracks[("default", state.record.name)]
    seen = len(looks)
    for _ in range(3):
        track.poke()  # as tracking.wake_forever does
        await turns()  # the follower has taken the poke and waits again
    assert len(looks) == seen and not task.done()
    world.change(state, "Succeeded", containerStatuses=[ended()])
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending.result.phase is domain.PodPhase.SUCCEEDED and len(looks) == seen + 1


async def test_a_change_whose_wake_up_was_lost_is_acted_on_at_the_next_safety_poke(world: World) -> None:
    """What the safety net is for: the pod changed but its follower was not woken (a bug anywhere)."""
    state = await world.created()
    task = await followed(world, state)
    world.change(state, "Running", containerStatuses=[running()])
    await running_recorded(state)
    track = world.cluster.tracks[("default", state.record.name)]
    track.pod = {**track.pod, "status": {"phase": "Succeeded", "containerStatuses": [ended()]}}  # no signal
    await turns()
    assert not task.done()
    track.poke()
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending.result.phase is domain.PodPhase.SUCCEEDED
