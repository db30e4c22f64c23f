"""A followed pod's follower looks only when something a look acts on changed (issue 16: 7 wake-ups a pod for
3 that acted), and takes the Kubernetes events that come between its looks at once, without a look.

A look acts on the phase `interpret` reads, a container's start (its log) and end (the result, the sidecar's
XCom): `status.progress`. A property test proves that observations with the same progress leave a look
nothing new to act on; the follower tests count looks (calls of `status.interpret`) with the fakes of our
cluster protocol over the real SQLite store.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import domain
from gateway.clusters.tracking import PodTrack
from gateway.pods import builder, status
from gateway.pods.creation import Creator
from gateway.pods.finishing import Finisher
from gateway.pods.runstate import RunState
from gateway.settings import LiveSettings, Settings
from tests.e2e.conftest import eventually
from tests.unit.pod_fakes import journalled, pod_request, submitted
from tests.unit.test_pod_following import World, ended, followed, running, running_recorded, turns
from tests.unit.test_pod_following import world as world  # the fixture: the same world of fakes

WITHIN = 10.0  # bounds a failure only


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The pods the follower's looks read (each look interprets the pod once)."""
    seen: list[object] = []
    interpret = status.interpret
    monkeypatch.setattr(status, "interpret", lambda pod: seen.append(pod) or interpret(pod))
    return seen


def event(reason: str, kind: str = "Normal") -> domain.KubernetesEvent:
    return domain.KubernetesEvent(time=datetime.now(UTC), type=kind, reason=reason, message=reason.lower())


def bound(world: World, state: RunState) -> None:
    """The scheduler's bind and the kubelet's first status, as the simulator reports them: nothing a look acts on."""
    pod = dict(world.cluster.pods[("default", state.record.name)])
    pod["spec"] = {**pod["spec"], "nodeName": "n1"}
    pod["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "base", "state": {"waiting": {"reason": "ContainerCreating"}}}],
    }
    world.cluster.set_pod("default", state.record.name, pod)


async def test_a_change_no_look_acts_on_wakes_nobody_and_events_are_held_without_a_look(
    world: World, looks: list[object]
) -> None:
    state = await world.created()
    name = state.record.name
    world.change(state, "Pending")
    task = await followed(world, state)
    first = len(looks)
    assert first >= 1
    bound(world, state)
    world.cluster.add_event("default", name, ("u0", 1), event("Scheduled"))
    await turns()
    assert len(looks) == first  # the bind and an event: no look
    assert [e.reason for e in world.journal.held(state.request_id)] == ["Scheduled"]  # type: ignore[union-attr]
    world.change(state, "Running", containerStatuses=[running()])
    await running_recorded(state)
    assert len(looks) == first + 1
    for i, (reason, kind) in enumerate([("Pulled", "Normal"), ("BackOff", "Warning")], start=1):
        world.cluster.add_event("default", name, (f"u{i}", 1), event(reason, kind))
    await turns()
    assert len(looks) == first + 1  # trailing events: held without a look
    world.change(state, "Succeeded", containerStatuses=[ended()])
    ending = await asyncio.wait_for(task, WITHIN)
    assert len(looks) == first + 2
    assert [e.reason for e in ending.result.warning_events] == ["BackOff"]  # an event held lookless still counts
    world.cluster.add_event("default", name, ("u9", 1), event("Killing"))  # after the end: not the follower's
    await Finisher(world.store, world.journal).finish(state, ending.result, None)
    items = await journalled(world.store, world.journal, state.request_id)
    assert [i.reason for i in items if isinstance(i, domain.KubernetesEvent)] == ["Scheduled", "Pulled", "BackOff"]
    assert [i.phase for i in items if isinstance(i, domain.PhaseChange)][-1] is domain.PodPhase.RUNNING
    assert isinstance(items[-1], domain.PodResult)


async def test_a_container_that_waits_for_good_wakes_a_pending_pods_follower(world: World, looks: list[object]) -> None:
    """A fatal wait changes no phase the watch reports (still Pending): the progress says it, and the pod fails."""
    state = await world.created()
    world.change(state, "Pending")
    task = await followed(world, state)
    bound(world, state)
    await turns()
    pulling = {"name": "base", "state": {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}}
    world.change(state, "Pending", containerStatuses=[pulling])
    ending = await asyncio.wait_for(task, WITHIN)
    assert (ending.result.phase, ending.result.reason) == (domain.PodPhase.FAILED, "ErrImagePull")


async def test_an_init_containers_start_wakes_the_follower_to_follow_its_log(world: World) -> None:
    """With every container's log asked for, a container that starts while the phase stays Pending is acted on."""
    base = pod_request().pod
    manifest = {**base, "spec": {**base["spec"], "initContainers": [{"name": "init", "image": "busybox"}]}}
    state = await submitted(world.store, domain.PodRequest(request_id="r1", pod=manifest, log_selection=domain.LogSelection.ALL))
    await Creator(world.clusters, world.store, world.journal, LiveSettings(Settings())).place_and_create(state)
    world.change(state, "Pending")
    world.cluster.logs["init"] = ["2026-12-04T10:00:00.000000000Z from init"]
    task = await followed(world, state)
    world.change(state, "Pending", initContainerStatuses=[running("init")])

    async def init_log_read() -> bool:
        items = await journalled(world.store, world.journal, state.request_id)
        return [i.text for i in items if isinstance(i, domain.LogLine)] == ["from init"]

    await eventually(init_log_read, within=WITHIN)
    world.change(state, "Succeeded", initContainerStatuses=[ended("init")], containerStatuses=[ended()])
    ending = await asyncio.wait_for(task, WITHIN)
    assert ending.result.phase is domain.PodPhase.SUCCEEDED


# --- the track: a look due takes the events, else the follower's `take` at once ----------------------------


def attached(track: PodTrack, taken: list[list[domain.KubernetesEvent]]) -> None:
    track.attach(status.progress, lambda: taken.append(track.drain_events()))


async def test_an_event_goes_to_a_look_that_is_due_else_it_is_taken_at_once() -> None:
    track = PodTrack(asyncio.Event())
    taken: list[list[domain.KubernetesEvent]] = []
    attached(track, taken)
    track.update({"status": {"phase": "Pending"}})  # the first look is due
    track.add_event(("u0", 1), event("Scheduled"))
    assert taken == []  # left for the look that is due, with the phase it may record
    assert track.look() is track.pod and [e.reason for e in track.drain_events()] == ["Scheduled"]
    waiting = asyncio.create_task(track.wait(None))
    await asyncio.sleep(0)
    track.add_event(("u1", 1), event("Pulled"))
    track.update({"status": {"phase": "Pending"}, "spec": {"nodeName": "n1"}})  # progress unchanged
    await turns()
    assert [[e.reason for e in each] for each in taken] == [["Pulled"]] and not waiting.done()
    track.update({"status": {"phase": "Running"}})
    async with asyncio.timeout(WITHIN):  # bounds a failure only
        await waiting
    track.detach()
    track.add_event(("u2", 1), event("Started"))  # unattached: buffered, and it wakes the waiter as before
    assert len(taken) == 1 and [e.reason for e in track.drain_events()] == ["Started"]


async def test_a_failing_take_is_logged_and_leaves_the_events_to_the_follower(caplog: pytest.LogCaptureFixture) -> None:
    """The cluster's events watch calls `take`: a failure there must not end the watch for every pod."""
    track = PodTrack(asyncio.Event())

    def broken() -> None:
        raise RuntimeError("broken")

    track.attach(status.progress, broken)
    track.update({"status": {"phase": "Running"}})
    track.look()
    waiting = asyncio.create_task(track.wait(None))
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        track.add_event(("u0", 1), event("Pulled"))
    assert "taking a followed pod's events failed" in caplog.text
    async with asyncio.timeout(WITHIN):  # the follower is woken to take it at a look
        await waiting
    assert [e.reason for e in track.drain_events()] == ["Pulled"]


# --- status.progress: the same progress, nothing new for a look ---------------------------------------------

PHASES = st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown"])
REASONS = st.sampled_from(["ContainerCreating", "ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "", None])
STATES = st.one_of(
    st.just({}),
    st.builds(lambda r: {"waiting": {} if r is None else {"reason": r, "message": "m"}}, REASONS),
    st.just({"running": {"startedAt": "2026-12-05T10:00:00Z"}}),
    st.builds(lambda c: {"terminated": {"exitCode": c, "reason": "Error" if c else "Completed"}}, st.sampled_from([0, 1])),
)
NAMES = st.sampled_from(["base", "init", builder.XCOM_SIDECAR_NAME])
CONTAINER = st.fixed_dictionaries(
    {"name": NAMES, "state": STATES}, optional={"lastState": STATES, "ready": st.booleans(), "image": st.text(max_size=3)}
)
CONDITION = st.fixed_dictionaries(
    {"type": st.just("PodScheduled"), "status": st.sampled_from(["True", "False"]),
     "reason": st.sampled_from(["Unschedulable", ""])}
)  # fmt: skip
POD = st.fixed_dictionaries(
    {
        "spec": st.just({"containers": [{"name": "base"}, {"name": builder.XCOM_SIDECAR_NAME}], "initContainers": [{"name": "init"}]}),
        "status": st.fixed_dictionaries(
            {"phase": PHASES},
            optional={
                "containerStatuses": st.lists(CONTAINER, max_size=2),
                "initContainerStatuses": st.lists(CONTAINER, max_size=1),
                "conditions": st.lists(CONDITION, max_size=1),
                "reason": st.sampled_from(["Evicted", ""]),
                "message": st.text(max_size=3),
            },
        ),
    },
    optional={"metadata": st.fixed_dictionaries({"name": st.just("p")})},
)


def acts_on(pod: dict[str, Any]) -> tuple[object, ...]:
    """What a look reads to decide what it does: the phase it would record, whether the pod ended (or the sidecar's
    XCom can be read), and which containers have started (their logs)."""
    view = status.interpret(pod)
    track = PodTrack(asyncio.Event())
    track.update(pod)
    started = tuple(track.container_started(name) for name in ("base", "init", builder.XCOM_SIDECAR_NAME))
    return view.phase, view.finished, view.main_terminated, started


@settings(max_examples=150, deadline=None)
@given(st.lists(POD, min_size=2, max_size=40))
def test_observations_with_the_same_progress_leave_a_look_nothing_new(pods: list[dict[str, Any]]) -> None:
    first: dict[object, tuple[object, ...]] = {}
    for pod in pods:
        acts = acts_on(pod)
        assert first.setdefault(status.progress(pod), acts) == acts
