"""Creation with fakes of our cluster protocol: exactly one pod, failover only when that is certainly safe.

The riskiest branch is a create the API server applied whose answer was lost: the request must stay
pinned to that cluster and pod name until a read tells, never create a second pod, never fail over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway import domain
from gateway.clusters.kubeapi import errors as ke
from gateway.observability import metrics
from gateway.placement import engine
from gateway.pods import builder, creation
from gateway.pods.creation import SUFFIX_ALPHABET, Created, Creator, new_suffix
from gateway.pods.journal import Journal
from gateway.pods.runstate import RunState
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import SqlStore
from tests.unit.pod_fakes import (
    CreateFault,
    FakeCluster,
    FakeClusters,
    answered,
    journalled,
    lost_answer,
    no_answer,
    opened_store,
    pod_request,
    snapshot,
    submitted,
)


@dataclass
class World:
    store: SqlStore
    journal: Journal
    clusters: FakeClusters
    first: FakeCluster  # the placement's first choice
    second: FakeCluster

    def creator(self) -> Creator:
        return Creator(self.clusters, self.store, self.journal, LiveSettings(Settings()))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store, journal = await opened_store(tmp_path)
    clusters = FakeClusters({"a": FakeCluster("a"), "b": FakeCluster("b")})
    first = engine.place(pod_request(), clusters.snapshots()).cluster
    second = ({"a", "b"} - {first}).pop()
    yield World(store, journal, clusters, clusters.clusters[first], clusters.clusters[second])
    await journal.close()
    await store.close()


def create_failures(items: list[domain.StreamItem]) -> list[str]:
    return [i.message for i in items if isinstance(i, domain.PhaseChange) and i.reason == "CreateFailed"]


async def test_a_create_that_succeeds_is_stored_as_pending_on_the_first_choice(world: World) -> None:
    state = await submitted(world.store, pod_request())
    await world.creator().place_and_create(state)
    assert world.clusters.all_pods() == [(world.first.name, state.record.name)]
    assert (state.record.cluster, state.record.phase) == (world.first.name, domain.PodPhase.PENDING)
    stored = await world.store.get_pod_record("r1")
    assert stored is not None and (stored.cluster, stored.name) == (world.first.name, state.record.name)
    placed = [i for i in await journalled(world.store, world.journal, "r1") if isinstance(i, domain.PlacementDecision)]
    assert [p.cluster for p in placed] == [world.first.name]
    assert list(world.first.tracks) == [("default", state.record.name)]  # tracked from before the create


async def test_lost_answer_read_back_finds_our_pod_and_never_creates_again(world: World) -> None:
    world.first.create_faults = [lost_answer()]
    state = await submitted(world.store, pod_request())
    await world.creator().place_and_create(state)
    assert world.clusters.all_pods() == [(world.first.name, state.record.name)]
    assert world.first.creates == [state.record.name] and world.second.creates == []
    assert state.record.phase is domain.PodPhase.PENDING


async def test_lost_answer_with_unanswered_reads_stays_pinned_to_the_cluster_and_name(world: World) -> None:
    """Answers lost for the create and for the reads that follow, past the placement timeout: the request
    keeps to that cluster and pod name until a read tells, and ends with the one pod the server holds."""
    world.first.create_faults = [lost_answer(), CreateFault(no_answer())]
    world.first.get_faults = [no_answer(), answered(503, "ServiceUnavailable"), no_answer()]
    state = await submitted(world.store, pod_request())  # placement timeout 0: already past
    await world.creator().place_and_create(state)
    name = state.record.name
    assert world.clusters.all_pods() == [(world.first.name, name)]
    assert world.second.creates == []  # never a failover
    assert world.first.creates == [name] * 4  # the same name each time: AlreadyExists, never a second pod
    assert (state.record.cluster, state.record.phase) == (world.first.name, domain.PodPhase.PENDING)
    items = await journalled(world.store, world.journal, "r1")
    assert [p.cluster for p in items if isinstance(p, domain.PlacementDecision)] == [world.first.name]
    assert create_failures(items) == [f"creating the pod on {world.first.name} failed; outcome unknown, "
                                      "checking before any failover"] * 3  # fmt: skip


async def test_a_restart_after_storing_the_placement_resumes_on_that_cluster_and_name(world: World) -> None:
    """The gateway stored the placement and sent the create, then died: the resumed run creates the same
    name on the same cluster (meeting its own pod), even though that cluster is now cordoned."""
    request = pod_request()
    await submitted(world.store, request)
    body = builder.build_pod(request, cluster=world.first.name, gateway_id="podgate", name_suffix="k3x9q2ab")
    name = body["metadata"]["name"]
    decision = engine.place(request, world.clusters.snapshots())
    await world.store.record_placement(
        "r1", cluster=world.first.name, region="eu-west-1", namespace="default", name=name, decision=decision,
        phase=domain.PodPhase.QUEUED,
    )  # fmt: skip
    world.first.pods[("default", name)] = body  # the create landed; its answer died with the gateway
    world.first.cordoned = True
    stored = await world.store.get_pod_record("r1")
    assert stored is not None
    resumed = RunState(stored)
    await world.creator().place_and_create(resumed)
    assert (resumed.record.cluster, resumed.record.name, resumed.record.phase) == (
        world.first.name, name, domain.PodPhase.PENDING,
    )  # fmt: skip
    assert world.first.creates == [name] and world.second.creates == []
    assert world.clusters.all_pods() == [(world.first.name, name)]


@pytest.mark.parametrize(
    "fault",
    [
        CreateFault(no_answer(maybe_sent=False)),  # connection refused: never sent
        CreateFault(answered(429, "TooManyRequests")),
        CreateFault(answered(403, "Forbidden")),
        CreateFault(answered(404, "NotFound")),  # the namespace is missing there
    ],
    ids=["refused-connection", "429", "403", "404"],
)
async def test_a_create_certainly_not_applied_fails_over(world: World, fault: CreateFault) -> None:
    world.first.create_faults = [fault]
    state = await submitted(world.store, pod_request())
    await world.creator().place_and_create(state)
    assert world.clusters.all_pods() == [(world.second.name, state.record.name)]
    assert state.record.cluster == world.second.name
    assert state.record.decision is not None and "after failover" in state.record.decision.reason
    assert world.first.tracks == {}  # the failed attempt's track is released
    assert create_failures(await journalled(world.store, world.journal, "r1")) == [
        f"creating the pod on {world.first.name} failed; trying the next candidate"
    ]


async def test_an_unknown_outcome_read_back_as_not_found_fails_over(world: World) -> None:
    world.first.create_faults = [CreateFault(answered(500, "InternalError"))]  # not applied, as the read shows
    state = await submitted(world.store, pod_request())
    await world.creator().place_and_create(state)
    assert world.clusters.all_pods() == [(world.second.name, state.record.name)]


@pytest.mark.parametrize("status", [(422, "Invalid"), (400, "BadRequest")])
async def test_a_refused_pod_is_rejected_without_failover(world: World, status: tuple[int, str]) -> None:
    world.first.create_faults = [CreateFault(answered(*status, message="spec.containers[0].image: Required value"))]
    state = await submitted(world.store, pod_request())
    with pytest.raises(creation.Rejected) as raised:
        await world.creator().place_and_create(state)
    assert raised.value.result().reason == "Rejected"
    assert "spec.containers[0].image: Required value" in raised.value.result().message
    assert world.second.creates == [] and world.clusters.all_pods() == []
    assert world.first.tracks == {}


async def test_a_pod_of_that_name_that_is_not_ours_is_name_taken(world: World) -> None:
    request = pod_request(keep_name=True)
    world.first.pods[("default", "job")] = {"metadata": {"name": "job", "annotations": {}}}
    state = await submitted(world.store, request)
    with pytest.raises(creation.NameTaken):
        await world.creator().place_and_create(state)
    assert world.second.creates == []
    assert world.first.pods[("default", "job")] == {"metadata": {"name": "job", "annotations": {}}}


async def test_cancel_while_waiting_for_a_cluster_ends_creation(world: World) -> None:
    world.first.create_faults = [CreateFault(no_answer(maybe_sent=False))] * 100
    world.second.create_faults = [CreateFault(no_answer(maybe_sent=False))] * 100
    request = pod_request(placement=domain.PlacementSpec(timeout_seconds=60))
    state = await submitted(world.store, request)
    state.cancel("stop")
    with pytest.raises(creation.Cancelled) as raised:
        await world.creator().place_and_create(state)
    assert raised.value.result() == domain.PodResult(
        phase=domain.PodPhase.CANCELLED, reason="Cancelled", message="stop"
    )
    assert world.clusters.all_pods() == []


async def test_a_cancel_asked_for_before_the_first_attempt_sends_no_create(world: World) -> None:
    """A runner started for a request whose cancel is stored (taken over, restarted) creates nothing."""
    state = await submitted(world.store, pod_request())
    state.cancel("stored before the takeover")
    with pytest.raises(creation.Cancelled, match="stored before the takeover"):
        await world.creator().place_and_create(state)
    assert world.first.creates == world.second.creates == []


async def test_a_runner_stopped_while_it_waits_for_a_cluster_leaves_nothing_waiting(world: World) -> None:
    """The gateway stopping (or losing its lease) cancels runners mid-wait: neither wait may outlive them."""
    state = await submitted(world.store, pod_request())
    before = asyncio.all_tasks()
    runner = asyncio.create_task(creation.wait_or_cancel(state, asyncio.Event().wait()))
    await asyncio.sleep(0.01)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() - before if not t.done()] == []


class CancelWhilePlacing:
    """The store, with a cancel arriving while the placement is being written."""

    def __init__(self, store: SqlStore, state: RunState) -> None:
        self._store, self._state = store, state

    async def record_placement(self, request_id: str, **kwargs: Any) -> domain.PodRecord:
        record = await self._store.record_placement(request_id, **kwargs)
        self._state.cancel("arrived during the write")
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_cancel_arriving_while_the_placement_is_stored_sends_no_create(world: World) -> None:
    state = await submitted(world.store, pod_request())
    store: Any = CancelWhilePlacing(world.store, state)
    with pytest.raises(creation.Cancelled, match="arrived during the write"):
        await Creator(world.clusters, store, world.journal, LiveSettings(Settings())).place_and_create(state)
    assert state.record.name and world.first.creates == world.second.creates == []
    assert list(world.first.tracks) == []


@pytest.mark.parametrize(
    ("fault", "read", "expected"),
    [
        (None, None, Created.YES),
        (lost_answer(), None, Created.YES),  # read back: ours
        (lost_answer(), no_answer(), Created.UNKNOWN),  # read unanswered: stay
        (CreateFault(answered(503, "ServiceUnavailable")), None, Created.NO),  # read back: not there
        (CreateFault(answered(503, "ServiceUnavailable")), answered(500, "InternalError"), Created.UNKNOWN),
        (CreateFault(no_answer(maybe_sent=False)), None, Created.NO),
        (CreateFault(answered(401, "Unauthorized")), None, Created.NO),
    ],
)
async def test_create_resolves_each_outcome(
    fault: CreateFault | None, read: ke.KubeError | None, expected: Created
) -> None:
    cluster = FakeCluster("a", create_faults=[fault] if fault else [], get_faults=[read] if read else [])
    body = {"metadata": {"name": "job-x", "annotations": {builder.REQUEST_ID_ANNOTATION: "r1"}}}
    assert await creation.create(cluster, "default", body) is expected


def test_pod_name_suffixes_are_eight_random_lowercase_alphanumerics() -> None:
    suffixes = [new_suffix() for _ in range(2000)]
    assert all(len(s) == 8 and set(s) <= set(SUFFIX_ALPHABET) for s in suffixes)
    assert len(set(suffixes)) == len(suffixes)
    assert set("".join(suffixes)) == set(SUFFIX_ALPHABET)  # every character occurs (16,000 draws of 36)


async def accepted(world: World, snapshots: list[domain.ClusterSnapshot] | None = None) -> domain.PodRecord:
    """Request r1's record as SubmitPod stores it, placed at its acceptance among `snapshots` (default: the fleet)."""
    state = await submitted(world.store, pod_request())
    placement = engine.placement(pod_request(), world.clusters.snapshots() if snapshots is None else snapshots)
    placed = creation.placed_at_acceptance(state.record, placement)
    await world.store.record_placement(
        "r1", cluster=placed.cluster, region=placed.region, namespace=placed.namespace, name=placed.name,
        decision=placed.decision,
    )  # fmt: skip
    return (await world.store.get_pod_record("r1")) or state.record


def placements_counted(cluster: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("podgate_placement_decisions_total", {"cluster": cluster, "reason": reason}) or 0.0


async def test_placed_at_acceptance_creates_that_pod_with_no_second_placement_write(world: World) -> None:
    placed = await accepted(world)
    fresh = RunState(placed, fresh=True)
    await world.creator().place_and_create(fresh)
    assert world.clusters.all_pods() == [(world.first.name, placed.name)]
    items = await journalled(world.store, world.journal, "r1")
    assert not [i for i in items if isinstance(i, domain.PlacementDecision)]  # no placement stored by the runner


@pytest.mark.parametrize("fresh", [True, False])
async def test_a_cluster_chosen_at_acceptance_and_cordoned_since_is_left_only_if_nothing_was_sent(
    world: World, fresh: bool
) -> None:
    """Fresh (accepted by this process just now), no create was ever sent under that name: placed anew.
    Resumed, a create may have been sent before the restart: that cluster and name stay first."""
    placed = await accepted(world)
    world.first.cordoned = True
    run = RunState(placed, fresh=fresh)
    await world.creator().place_and_create(run)
    if fresh:
        assert world.first.creates == [] and world.second.creates == [run.record.name] != [placed.name]
        assert (run.record.cluster, run.record.decision.cluster) == (world.second.name, world.second.name)  # type: ignore[union-attr]
    else:
        assert world.first.creates == [placed.name] and world.second.creates == []


async def test_a_cluster_chosen_at_acceptance_and_outranked_since_keeps_its_pod_counted_as_placed(world: World) -> None:
    """Fresh, its cluster still a candidate though another ranks first now: the pod is created there under the
    stored name, no placement stored by the runner, and counted as placed on its decision's first choice. The
    runner judges that cluster alone (`engine.is_candidate`) instead of ranking the fleet again, which kept the
    same cluster but counted a failover."""
    placed = await accepted(world, [snapshot(world.second)])  # the first choice of now was no candidate then
    world.first.weight = 1000  # and outranks it now, stability bonus and all
    assert placed.cluster == world.second.name
    assert engine.place(pod_request(), world.clusters.snapshots(), previous=placed.cluster).cluster == world.first.name
    counted = placements_counted(world.second.name, "placed"), placements_counted(world.second.name, "failover")
    run = RunState(placed, fresh=True)
    await world.creator().place_and_create(run)
    assert world.second.creates == [placed.name] and world.first.creates == []
    assert (run.record.cluster, run.record.name, run.record.decision) == (placed.cluster, placed.name, placed.decision)
    assert placements_counted(world.second.name, "placed") == counted[0] + 1
    assert placements_counted(world.second.name, "failover") == counted[1]


@dataclass
class Reading(FakeClusters):
    """Fake clusters that note which snapshots creation reads: one cluster's name, or "*" for the fleet's."""

    read: list[str] = field(default_factory=list)

    def snapshots(self) -> list[domain.ClusterSnapshot]:
        self.read.append("*")
        return FakeClusters.snapshots(self)

    def snapshot(self, name: str) -> domain.ClusterSnapshot | None:
        self.read.append(name)
        return next((s for s in FakeClusters.snapshots(self) if s.spec.name == name), None)


@pytest.mark.parametrize("cordoned", [False, True])
async def test_the_check_of_the_cluster_placed_at_acceptance_reads_its_snapshot_alone(world: World, cordoned: bool) -> None:
    """A fresh pod's cluster, chosen at acceptance, is judged from its own snapshot (a snapshot a registered
    cluster is made anew at each read: 1.2 ms a pod at 1,000 clusters); the fleet's are read only when it is no
    candidate any more, to place the pod anew."""
    placed = await accepted(world)
    world.first.cordoned = cordoned
    clusters = Reading(world.clusters.clusters)
    run = RunState(placed, fresh=True)
    await Creator(clusters, world.store, world.journal, LiveSettings(Settings())).place_and_create(run)
    assert clusters.read == ([placed.cluster, "*"] if cordoned else [placed.cluster])
    assert (run.record.cluster, run.record.name == placed.name) == (
        (world.second.name, False) if cordoned else (placed.cluster, True)
    )
