"""How many store and Kubernetes API calls the pod path makes: each costs the gateway CPU per pod (bench/README.md, issue 16).

The store is the real SQLite store behind a counting wrapper; the cluster is the fake of our protocol.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import domain
from gateway.clusters.tracking import PodTrack
from gateway.pods.creation import Creator
from gateway.pods.finishing import Finisher
from gateway.pods.following import GONE_CHECK_SECONDS, Follower
from gateway.pods.journal import Journal
from gateway.pods.runstate import RunState
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import SqlStore
from tests.e2e.conftest import eventually
from tests.unit.pod_fakes import FakeCluster, FakeClusters, journalled, pod_request, submitted

WITHIN = 10.0
WRITES = ("create_pod_record", "record_placement", "record_phase", "record_result", "record_finished", "append_events")


class CountingStore:
    """The real store, counting the calls made through it (by method name)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.during: dict[str, Callable[[], None]] = {}  # what happens elsewhere while a call is under way

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name in self.during:
                self.during.pop(name)()
            return attribute(*args, **kwargs)

        return counted

    def writes(self) -> int:
        """Store writes made through it."""
        return sum(self.calls[name] for name in WRITES)


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[CountingStore]:
    store = CountingStore(await SqlStore.open(path=tmp_path / "gateway.sqlite"))
    yield store
    await store.store.close()


@dataclass
class Run:
    """A run's world: the counted store, its journal, and one fake cluster."""

    store: CountingStore
    journal: Journal
    cluster: FakeCluster = field(default_factory=lambda: FakeCluster("a"))
    clusters: FakeClusters = field(init=False)

    def __post_init__(self) -> None:
        self.clusters = FakeClusters({"a": self.cluster})

    def follower(self) -> Follower:
        return Follower(self.clusters, self.store, self.journal, LiveSettings(Settings()))  # type: ignore[arg-type]

    async def created(self, *, fresh: bool, pending_within: float = 60.0) -> RunState:
        """Placed and created; its Pending not stored until the next write (or `pending_within` seconds)."""
        state = await submitted(self.store.store, pod_request())
        state.fresh = fresh
        settings = LiveSettings(Settings())
        creator = Creator(self.clusters, self.store, self.journal, settings, pending_within=pending_within)  # type: ignore[arg-type]
        await creator.place_and_create(state)
        return state


@pytest.fixture
async def run(counted: CountingStore) -> AsyncIterator[Run]:
    # lines and events held for the next write as the gateway holds them (5 s there; longer: no flush under load)
    world = Run(counted, Journal(counted, log_hold_seconds=60.0))  # type: ignore[arg-type]
    yield world
    await world.journal.close()


def succeeded(cluster: FakeCluster, state: RunState) -> None:
    """The pod as the watch reports it once its container exited 0."""
    ended = {"name": "base", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    pod = {
        **cluster.pods[("default", state.record.name)],
        "status": {"phase": "Succeeded", "containerStatuses": [ended]},
    }
    cluster.set_pod("default", state.record.name, pod)


def event(reason: str) -> domain.KubernetesEvent:
    return domain.KubernetesEvent(time=datetime.now(UTC), type="Normal", reason=reason, message=reason.lower())


@pytest.mark.parametrize("fresh", [True, False])
async def test_a_fresh_run_follows_without_reading_its_journal_back(
    run: Run, counted: CountingStore, fresh: bool
) -> None:
    """A request accepted by this process has no log line or event journalled yet; a resumed one may."""
    state = await run.created(fresh=fresh)
    succeeded(run.cluster, state)
    counted.calls.clear()
    ending = await asyncio.wait_for(run.follower().follow(state), WITHIN)
    assert ending.result.phase is domain.PodPhase.SUCCEEDED
    assert (counted.calls["read_events"] > 0) is not fresh  # resumed: read back to continue after its last line


async def stored_phase(run: Run, state: RunState) -> domain.PodPhase:
    record = await run.store.store.get_pod_record(state.request_id)
    assert record is not None
    return record.phase


async def test_events_that_came_together_are_journalled_in_one_write_with_the_pending_phase(
    run: Run, counted: CountingStore
) -> None:
    """The created pod's Pending waits for its first events, and they for the request's next write (here its
    result): one write for all of them, the Pending replaced by the result's phase."""
    state = await run.created(fresh=True)
    assert await stored_phase(run, state) is domain.PodPhase.QUEUED  # the pod name is stored, Pending not yet
    track = run.cluster.track("default", state.record.name)
    events = [event(reason) for reason in ("Scheduled", "Pulled", "Created", "Started")]
    for i, each in enumerate(events):
        track.add_event((f"u{i}", 1), each)
    succeeded(run.cluster, state)
    counted.calls.clear()
    ending = await asyncio.wait_for(run.follower().follow(state), WITHIN)
    assert counted.writes() == 0  # held: Pending and the events wait for the result
    await Finisher(counted, run.journal).finish(state, ending.result, None)  # type: ignore[arg-type]
    assert counted.writes() == 2 and (counted.calls["record_result"], counted.calls["record_finished"]) == (1, 1)
    assert await stored_phase(run, state) is domain.PodPhase.SUCCEEDED
    items = await journalled(counted.store, run.journal, state.request_id)
    assert [i for i in items if isinstance(i, domain.KubernetesEvent)] == events  # all of them, in order
    assert isinstance(items[-1], domain.PodResult)  # the events before the result they came with
    assert counted.writes() == 2  # nothing was left to flush


async def test_each_state_change_is_one_store_write_with_its_events(run: Run, counted: CountingStore) -> None:
    """Placement, a phase and the result are each stored with their journal events in one call; Pending is
    not stored on its own when Running comes first, and events seen with Running go with it."""
    state = await run.created(fresh=True)
    assert (counted.calls["record_placement"], counted.writes()) == (1, 1)
    running = {**run.cluster.pods[("default", state.record.name)], "status": {"phase": "Running"}}
    run.cluster.set_pod("default", state.record.name, running)
    events = [event(reason) for reason in ("Scheduled", "Started")]
    for i, each in enumerate(events):
        run.cluster.track("default", state.record.name).add_event((f"u{i}", 1), each)
    counted.calls.clear()
    follow = asyncio.create_task(run.follower().follow(state))
    async for streamed in run.journal.follow(state.request_id, state.record.last_seq):  # until Running is journalled
        if isinstance(streamed.item, domain.PhaseChange):
            break
    assert counted.writes() == 1 and counted.calls["record_phase"] == 1  # Running, its events, Pending replaced
    assert await stored_phase(run, state) is domain.PodPhase.RUNNING
    succeeded(run.cluster, state)
    await asyncio.wait_for(follow, WITHIN)
    assert counted.writes() == 1
    items = await journalled(counted.store, run.journal, state.request_id)
    phases = [i.phase for i in items if isinstance(i, domain.PhaseChange)]
    assert phases == [domain.PodPhase.RUNNING]
    assert any(isinstance(i, domain.PlacementDecision) for i in items)
    assert [i for i in items if isinstance(i, domain.KubernetesEvent)] == events
    assert isinstance(items[-1], domain.PhaseChange)  # the events before the phase they came with
    assert counted.writes() == 1  # nothing was left to flush


async def test_a_pending_with_nothing_to_go_with_is_stored_alone_by_its_deadline(
    run: Run, counted: CountingStore
) -> None:
    state = await run.created(fresh=True, pending_within=0.1)
    assert await stored_phase(run, state) is domain.PodPhase.QUEUED
    counted.calls.clear()

    async def stored_pending() -> bool:
        return await stored_phase(run, state) is domain.PodPhase.PENDING

    await eventually(stored_pending, within=WITHIN)
    assert counted.writes() == 1 and counted.calls["record_phase"] == 1


@pytest.mark.parametrize("fresh", [True, False])
async def test_a_pod_just_created_is_awaited_from_the_watch_not_asked_for(
    run: Run, counted: CountingStore, fresh: bool
) -> None:
    """The watch lags behind a busy cluster: a run's own new pod is not read back while it catches up."""
    state = await run.created(fresh=fresh)
    key = ("default", state.record.name)
    run.cluster.tracks[key] = PodTrack(run.cluster.synced)  # the watch has not shown the pod yet
    task = asyncio.create_task(run.follower().follow(state))
    if fresh:
        await asyncio.sleep(0.2)  # room for a GET that must not come
    else:  # resumed: it may be gone, so it asks at once, well before a fresh pod's GONE_CHECK_SECONDS (polled: load)
        for _ in range(int((GONE_CHECK_SECONDS - 1) / 0.01)):
            if run.cluster.gets:
                break
            await asyncio.sleep(0.01)
    assert run.cluster.gets == ([] if fresh else [state.record.name])
    succeeded(run.cluster, state)  # the watch catches up
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending.result.phase is domain.PodPhase.SUCCEEDED


async def test_a_pod_the_watch_shows_after_its_first_events_is_followed_not_taken_for_deleted(
    run: Run, counted: CountingStore
) -> None:
    """The pod watch lags behind the events watch: the events are held (no write), the pod is neither asked
    for (fresh: its watch shows it shortly) nor taken for deleted, and followed once the watch shows it."""
    state = await run.created(fresh=True)
    key = ("default", state.record.name)
    track = run.cluster.tracks[key] = PodTrack(run.cluster.synced)  # the pod watch lags behind the events
    track.add_event(("u0", 1), event("Scheduled"))
    counted.calls.clear()
    task = asyncio.create_task(run.follower().follow(state))
    await asyncio.sleep(0.2)  # room for a write or a GET that must not come (the pod showing sooner passes too)
    assert counted.writes() == 0 and run.cluster.gets == []
    succeeded(run.cluster, state)
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending.result.phase is domain.PodPhase.SUCCEEDED
    assert [i.reason for i in await journalled(counted.store, run.journal, state.request_id)
            if isinstance(i, domain.KubernetesEvent)] == ["Scheduled"]  # fmt: skip
