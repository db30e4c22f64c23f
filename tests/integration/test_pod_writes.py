"""Fewer store writes per pod, on SQLite and PostgreSQL: the audit record goes with the accept, a created pod's
Pending with its next write; a restart or a takeover before that write makes no second pod and loses or
repeats nothing (bench/README.md, issue 16: gateway CPU per dispatched pod).

The store is real; the cluster is the fake of our own protocol (tests/unit/pod_fakes.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway import domain
from gateway.clusters.tracking import PodTrack
from gateway.errors import ResourceExhausted
from gateway.placement import engine
from gateway.pods.creation import Creator, placed_at_acceptance
from gateway.pods.finishing import Finisher
from gateway.pods.following import Follower
from gateway.pods.journal import Journal, encode
from gateway.pods.runstate import RunState
from gateway.settings import LiveSettings, Settings
from gateway.store.base import LeaseLost, TenantAdmission
from gateway.store.lease import LeasePolicy
from gateway.store.sql import SqlStore
from tests.conftest import Database
from tests.e2e.conftest import eventually
from tests.unit.pod_fakes import FakeCluster, FakeClusters, journalled, pod_request, submitted

WITHIN = 10.0
HELD = 60.0  # lines and events wait for the next write (the gateway's 5 s, longer here: no flush of its own under load)
EVENTS = ("Scheduled", "Pulled", "Created", "Started")


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlStore]:
    async with await SqlStore.open(database.url) as s:
        yield s


def audit_of(request_id: str) -> dict[str, Any]:
    return {"action": "pod.submit", "outcome": "accepted", "actor": "token:t", "request_id": request_id}


def new_record(request_id: str) -> domain.PodRecord:
    return domain.PodRecord(request=pod_request(request_id), phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC))


async def audited(store: SqlStore) -> list[str]:
    entries, _ = await store.list_audit(action="pod.submit")
    return [e.record["request_id"] for e in entries]


async def test_a_record_and_its_audit_are_one_write_and_only_a_new_record_is_audited(store: SqlStore) -> None:
    before = store.writes.operations
    _, created = await store.create_pod_record(new_record("r1"), audit=audit_of("r1"))
    assert created and store.writes.operations == before + 1
    assert (await store.create_pod_record(new_record("r1"), audit=audit_of("r1")))[1] is False
    assert await audited(store) == ["r1"]  # resubmitted: audited once

    def full(unfinished: list[domain.PodRecord]) -> None:
        raise ResourceExhausted("quota")

    with pytest.raises(ResourceExhausted):
        await store.create_pod_record(new_record("r2"), audit=audit_of("r2"), admission=TenantAdmission(tenant="", check=full))
    assert await store.get_pod_record("r2") is None and await audited(store) == ["r1"]  # refused: neither
    (entry,), _ = await store.list_audit(action="pod.submit")
    assert (entry.actor, entry.record["outcome"]) == ("token:t", "accepted")


class World:
    """One gateway's pod path on `store`: a journal, and the runner's three phases over one fake cluster."""

    def __init__(
        self, store: SqlStore, cluster: FakeCluster, *, pending_within: float = 60.0, hold: float | None = None
    ) -> None:
        """`hold`: how long log lines and events may wait for the request's next write (`Journal`)."""
        self.store = store
        self.journal = Journal(store, log_hold_seconds=hold)
        self.clusters = FakeClusters({cluster.name: cluster})
        settings = LiveSettings(Settings())
        self.creator = Creator(self.clusters, store, self.journal, settings, pending_within=pending_within)
        self.follower = Follower(self.clusters, store, self.journal, settings)
        self.finisher = Finisher(store, self.journal)

    async def run(self, state: RunState) -> None:
        """As PodRunner drives a request: created unless its record is past Queued, followed, finished."""
        if state.record.phase is domain.PodPhase.QUEUED:
            await self.creator.place_and_create(state)
        ending = await asyncio.wait_for(self.follower.follow(state), WITHIN)
        await self.finisher.finish(state, ending.result, ending.cluster)

    def crash(self, request_id: str) -> None:
        """The process dies: what it held in memory for the request is gone, nothing more is written."""
        self.journal.drop_pending([request_id])
        for cluster in self.clusters.clusters.values():
            cluster.tracks.clear()


async def stored(store: SqlStore, request_id: str) -> domain.PodRecord:
    record = await store.get_pod_record(request_id)
    assert record is not None
    return record


async def created_not_yet_pending(world: World, request_id: str) -> RunState:
    state = await submitted(world.store, pod_request(request_id))
    await world.creator.place_and_create(state)
    record = await stored(world.store, request_id)
    assert (record.phase, record.name) == (domain.PodPhase.QUEUED, state.record.name)  # the name before the create
    assert state.record.phase is domain.PodPhase.PENDING  # in memory: stored with the next write
    return state


def event_of(reason: str) -> domain.KubernetesEvent:
    return domain.KubernetesEvent(time=datetime.now(UTC), type="Normal", reason=reason, message=reason.lower())


def runs_to_success(cluster: FakeCluster, name: str) -> None:
    """The pod's events (those the cluster does not have yet), then its end, as the watches would report
    them once followed."""
    had = {key for key, _ in cluster.events.get(("default", name), [])}
    cluster.track("default", name)
    for i, reason in enumerate(EVENTS):
        if (f"u{i}", 1) not in had:
            cluster.add_event("default", name, (f"u{i}", 1), event_of(reason))
    ended = {"name": "base", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    pod = cluster.pods[("default", name)]
    cluster.set_pod("default", name, {**pod, "status": {"phase": "Succeeded", "containerStatuses": [ended]}})


async def check_once_each(store: SqlStore, journal: Journal, cluster: FakeCluster, state: RunState) -> None:
    """One pod ever, created twice (the second: AlreadyExists), deleted at the end; every event journalled once."""
    name = state.record.name
    assert cluster.creates == [name, name] and cluster.deletes == [name] and cluster.pods == {}
    record = await stored(store, state.request_id)
    assert record.phase is domain.PodPhase.SUCCEEDED and record.finished_at is not None
    items = await journalled(store, journal, state.request_id)
    assert [type(i).__name__ for i in items] == ["PlacementDecision", *["KubernetesEvent"] * len(EVENTS), "PodResult"]
    assert [i.reason for i in items if isinstance(i, domain.KubernetesEvent)] == list(EVENTS)


async def test_a_restart_before_pending_is_stored_makes_no_second_pod_and_loses_nothing(
    database: Database,
) -> None:
    cluster = FakeCluster("a")
    first = World(await SqlStore.open(database.url), cluster)
    state = await created_not_yet_pending(first, "r1")
    first.crash("r1")
    await first.store.close()
    async with await SqlStore.open(database.url) as store:
        second = World(store, cluster)
        (resumed,) = await store.list_unfinished()
        again = RunState(resumed)  # not fresh: read back from the store
        runs_to_success(cluster, state.record.name)
        await second.run(again)
        assert again.record.name == state.record.name
        await check_once_each(store, second.journal, cluster, again)
        await second.journal.close()


async def test_pending_and_the_first_events_go_with_the_next_write(store: SqlStore) -> None:
    """Held, as the gateway holds them while it is the store's only writer (`HELD`): here until the result."""
    cluster = FakeCluster("a")
    world = World(store, cluster, hold=HELD)
    state = await created_not_yet_pending(world, "r1")
    before = store.writes.operations
    runs_to_success(cluster, state.record.name)
    ending = await asyncio.wait_for(world.follower.follow(state), WITHIN)
    assert store.writes.operations == before  # Pending and the four events wait for the result
    await world.finisher.finish(state, ending.result, ending.cluster)
    assert store.writes.operations == before + 2  # the result with them, then finished
    record = await stored(store, "r1")
    assert record.phase is domain.PodPhase.SUCCEEDED and record.last_seq == 1 + len(EVENTS) + 1
    await world.journal.close()


async def two_replicas(stores: tuple[SqlStore, SqlStore]) -> tuple[SqlStore, SqlStore]:
    """Replicas "a" and "b", registered, on one PostgreSQL database."""
    for store, replica in zip(stores, "ab", strict=True):
        store.act_as(replica)
        await store.register_replica(replica, "", LeasePolicy())
    return stores


async def test_a_takeover_before_pending_is_stored_makes_no_second_pod_and_loses_nothing(
    two_stores: tuple[SqlStore, SqlStore], caplog: pytest.LogCaptureFixture
) -> None:
    """Replica a created the pod and lost its lease before storing Pending: its late write is refused and
    dropped (no task error), and replica b, which claimed the request, creates nothing new."""
    a, b = await two_replicas(two_stores)
    cluster = FakeCluster("a")
    old = World(a, cluster)
    caplog.set_level(logging.INFO, logger="gateway.pods.journal")
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        state = await created_not_yet_pending(old, "r1")
        await a.release_replica("a")  # a does not know it: it writes under its old fence
        (claimed,) = await b.claim_orphans("b")
        assert (claimed.phase, claimed.name) == (domain.PodPhase.QUEUED, state.record.name)
        with pytest.raises(LeaseLost):  # a's next write, carrying Pending: refused as a whole
            await old.journal.append("r1", domain.KubernetesEvent(time=datetime.now(UTC), type="Normal", reason="Scheduled", message="s"))
        old.journal.defer_phase("r1", domain.PodPhase.PENDING, 0.0)  # or its deadline comes: in the background
        await eventually(lambda: any("owned by another replica" in r.getMessage() for r in caplog.records), within=WITHIN)
        old.journal.defer_phase("r1", domain.PodPhase.PENDING, 60.0)
        await old.journal.close()  # or the gateway stops first: written at close, refused, and close goes on
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert unhandled == []
    assert (await stored(b, "r1")).phase is domain.PodPhase.QUEUED  # a's refused write left nothing
    new = World(b, cluster)
    runs_to_success(cluster, state.record.name)
    await new.run(RunState(claimed))
    await check_once_each(b, new.journal, cluster, RunState(await stored(b, "r1")))
    await new.journal.close()


class LookedAt(PodTrack):
    """A pod's track that counts its follower's looks (each takes the events that came since the last)."""

    looks = 0

    def drain_events(self) -> list[domain.KubernetesEvent]:
        self.looks += 1
        return super().drain_events()


def running_status(cluster: FakeCluster, name: str) -> dict[str, Any]:
    started = {"name": "base", "state": {"running": {"startedAt": "2026-12-05T10:00:00Z"}}}
    return {**cluster.pods[("default", name)], "status": {"phase": "Running", "containerStatuses": [started]}}


async def accepted(world: World, request_id: str) -> domain.PodRecord:
    """Stored as SubmitPod stores it: the record placed at acceptance and its first events, one write."""
    now = datetime.now(UTC)
    placement = engine.placement(pod_request(request_id), world.clusters.snapshots(), Settings().placement)
    placed = placed_at_acceptance(new_record(request_id), placement)
    first = [encode(domain.PhaseChange(phase=domain.PodPhase.QUEUED, reason="Accepted"), now)]
    record, created = await world.store.create_pod_record(placed, events=[*first, encode(placement.decision, now)])
    assert created and record.name
    return record


async def test_a_pods_life_is_four_store_writes(store: SqlStore) -> None:
    """Accepted, Running, the result, finished: the Kubernetes events that come before Running (with a
    Pending deferred until then) and after it (Pulled, Created, Started trail Running on their own watch)
    wait for the next of these, with the log lines, instead of a write each (six writes a pod before)."""
    cluster = FakeCluster("a", logs={"base": [f"2026-12-05T10:00:0{i}Z line {i}" for i in range(3)]})
    world = World(store, cluster, hold=HELD)
    before = store.writes.operations
    record = await accepted(world, "r1")
    track = cluster.tracks[("default", record.name)] = LookedAt(cluster.synced)
    cluster.add_event("default", record.name, ("u0", 1), event_of("Scheduled"))
    run = asyncio.create_task(world.run(RunState(record, fresh=True)))
    await eventually(lambda: track.looks >= 1, within=WITHIN)  # Pending, Scheduled: the first look
    cluster.set_pod("default", record.name, running_status(cluster, record.name))

    async def stored_running() -> bool:
        return (await stored(store, "r1")).phase is domain.PodPhase.RUNNING

    await eventually(stored_running, within=WITHIN)
    looked = track.looks
    for i, reason in enumerate(EVENTS[1:], start=1):
        cluster.add_event("default", record.name, (f"u{i}", 1), event_of(reason))
    await eventually(lambda: track.looks > looked, within=WITHIN)  # the trailing events: a look of their own
    runs_to_success(cluster, record.name)
    await asyncio.wait_for(run, WITHIN)
    assert store.writes.operations - before == 4
    items = await journalled(store, world.journal, "r1")
    assert [i.reason for i in items if isinstance(i, domain.KubernetesEvent)] == list(EVENTS)  # each once, in order
    assert [i.text for i in items if isinstance(i, domain.LogLine)] == ["line 0", "line 1", "line 2"]
    assert [i.phase for i in items if isinstance(i, domain.PhaseChange)] == [domain.PodPhase.QUEUED, domain.PodPhase.RUNNING]
    assert isinstance(items[-1], domain.PodResult) and items[-1].phase is domain.PodPhase.SUCCEEDED
    assert (await stored(store, "r1")).finished_at is not None
    await world.journal.close()


async def test_events_a_lost_lease_dropped_are_journalled_once_by_the_new_owner(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    """Replica a held the pod's events when b took the request over: its write is refused and the events
    dropped; b lists them again from the cluster, and skips the one a had journalled."""
    a, b = await two_replicas(two_stores)
    cluster = FakeCluster("a")
    old = World(a, cluster, hold=HELD)
    state = await submitted(a, pod_request("r1"))
    state.fresh = True  # accepted by a: followed from its create
    await old.creator.place_and_create(state)
    name = state.record.name
    follow = asyncio.create_task(old.follower.follow(state))
    cluster.add_event("default", name, ("u0", 1), event_of("Scheduled"))
    await eventually(lambda: len(old.journal.held("r1")) == 1, within=WITHIN)
    await old.journal.flush("r1")  # journalled by a, with its Pending
    for i, reason in enumerate(EVENTS[1:], start=1):
        cluster.add_event("default", name, (f"u{i}", 1), event_of(reason))
    await eventually(lambda: len(old.journal.held("r1")) == len(EVENTS) - 1, within=WITHIN)  # held by a
    await a.release_replica("a")
    (claimed,) = await b.claim_orphans("b")
    with pytest.raises(LeaseLost):
        await old.journal.flush("r1")
    follow.cancel()
    await asyncio.gather(follow, return_exceptions=True)
    await old.journal.close()
    new = World(b, cluster)
    runs_to_success(cluster, name)
    await new.run(RunState(claimed))
    assert cluster.replays == [name]  # b listed the pod's events once
    items = await journalled(b, new.journal, "r1")
    assert [i.reason for i in items if isinstance(i, domain.KubernetesEvent)] == list(EVENTS)
    await new.journal.close()
