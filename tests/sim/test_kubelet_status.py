"""The kubelet's pure status logic: phases from container states, conditions, events aggregation."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.sim.events import EventRecorder
from gateway.sim.podstatus import ContainerState, PodState, default_pull_policy, exit_reason, image_id, pulled_events
from gateway.sim.store import ObjectStore

AT = "2026-11-24T13:00:00Z"


def state(*exits: int | None, init: bool = True) -> PodState:
    """A pod whose containers ran (None: still running) with these exit codes."""
    containers = []
    for i, code in enumerate(exits):
        cs = ContainerState(f"c{i}", "busybox")
        cs.start(AT)
        if code is not None:
            cs.finish(code, exit_reason(code, False, None), AT)
        containers.append(cs)
    return PodState("ns", "p", "uid", "n1", "127.0.0.1", "10.244.0.2", containers, [], start_time=AT, initialized=init)


@pytest.mark.parametrize(
    ("exits", "policy", "phase"),
    [
        ((0,), "Never", "Succeeded"),
        ((1,), "Never", "Failed"),
        ((0, 1), "Never", "Failed"),
        ((0, None), "Never", "Running"),
        ((0,), "OnFailure", "Succeeded"),
        ((1,), "OnFailure", "Running"),  # it will restart
        ((0,), "Always", "Running"),
        ((None,), "Always", "Running"),
    ],
)
def test_phase_follows_containers_and_restart_policy(exits: tuple[int | None, ...], policy: str, phase: str) -> None:
    pod = state(*exits)
    pod.settle_phase(policy)
    assert pod.phase == phase


def test_not_initialized_stays_pending() -> None:
    pod = state(None, init=False)
    pod.settle_phase("Never")
    assert pod.phase == "Pending"


def conditions(pod: PodState) -> dict[str, tuple[str, Any]]:
    rendered = pod.render({"conditions": [{"type": "PodScheduled", "status": "True"}], "qosClass": "BestEffort"}, AT)
    return {c["type"]: (c["status"], c.get("reason")) for c in rendered["conditions"]}


def test_conditions_running_and_completed() -> None:
    running = state(None)
    running.settle_phase("Never")
    assert conditions(running) == {
        "PodReadyToStartContainers": ("True", None),
        "Initialized": ("True", None),
        "Ready": ("True", None),
        "ContainersReady": ("True", None),
        "PodScheduled": ("True", None),
    }
    done = state(0)
    done.settle_phase("Never")
    assert conditions(done)["Ready"] == ("False", "PodCompleted")


def test_render_keeps_what_others_own_and_caps_the_message() -> None:
    pod = state(None)
    pod.containers[0].finish(1, "Error", AT, "x" * 5000)
    status = pod.render({"qosClass": "Burstable"}, AT)
    assert status["qosClass"] == "Burstable" and status["podIP"] == "10.244.0.2"
    assert len(status["containerStatuses"][0]["state"]["terminated"]["message"]) == 4096


@pytest.mark.parametrize(
    ("code", "oom", "error", "reason"),
    [
        (0, False, None, "Completed"),
        (2, False, None, "Error"),
        (137, True, None, "OOMKilled"),
        (128, False, "x", "StartError"),
    ],
)
def test_exit_reason(code: int, oom: bool, error: str | None, reason: str) -> None:
    assert exit_reason(code, oom, error) == reason


def test_image_id_looks_like_a_digest() -> None:
    assert image_id("busybox:1.36").startswith("docker.io/library/busybox@sha256:")
    assert image_id("ghcr.io/acme/app:1").startswith("ghcr.io/acme/app@sha256:")


async def test_repeated_events_aggregate_into_one_with_a_count() -> None:
    store = ObjectStore()
    recorder = EventRecorder(store, "default-scheduler")
    involved = {"kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}}
    for _ in range(3):
        recorder.record(involved, "Warning", "FailedScheduling", "0/1 nodes are available")
    recorder.record(involved, "Normal", "Scheduled", "Successfully assigned ns/p to n1", host="n1")
    items, _ = store.list("events", "ns")
    assert [(e["reason"], e["count"], e["source"]) for e in items] == [
        ("FailedScheduling", 3, {"component": "default-scheduler"}),
        ("Scheduled", 1, {"component": "default-scheduler", "host": "n1"}),
    ]
    failed = next(e for e in items if e["reason"] == "FailedScheduling")
    assert failed["involvedObject"] == {
        "kind": "Pod",
        "namespace": "ns",
        "name": "p",
        "uid": "u1",
        "apiVersion": "v1",
        "resourceVersion": "",
    }
    assert failed["firstTimestamp"] <= failed["lastTimestamp"] and failed["type"] == "Warning"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("registry:5000/app", "Always"),
        ("app@sha256:abc", "IfNotPresent"),
    ],
)
def test_default_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_pull_events_follow_the_policy() -> None:
    assert [r for r, _ in pulled_events("busybox", "Always")] == ["Pulling", "Pulled"]
    assert pulled_events("busybox:1", "IfNotPresent") == [
        ("Pulled", 'Container image "busybox:1" already present on machine')
    ]
