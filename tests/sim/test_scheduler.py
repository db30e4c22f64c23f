"""The scheduler on the store: binding, FailedScheduling, and retrying when the cluster changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.sim.scheduler import Scheduler
from gateway.sim.store import ObjectStore
from tests.sim.kubelet_fixtures import events, node, pod, wait_pod

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def gpu_pod(name: str, gpus: int, **spec: object) -> dict:
    container = {"name": "main", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    return pod(name, container, **spec)


@pytest.fixture
async def store() -> AsyncIterator[ObjectStore]:
    store = ObjectStore()
    for n in (
        node("gpu-a", "virtual", gpus=2),
        node("gpu-b", "virtual", gpus=4, taints=[GPU_TAINT]),
        node("cpu", "virtual"),
    ):
        store.create("nodes", n)
    scheduler = Scheduler(store)
    await scheduler.start()
    yield store
    await scheduler.stop()


def scheduled(p: dict) -> bool:
    return bool(p["spec"].get("nodeName"))


def unschedulable(p: dict) -> bool:
    return any(
        c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", [])
    )


async def test_binds_with_a_scheduled_event_and_condition(store: ObjectStore) -> None:
    store.create("pods", gpu_pod("train", 1))
    bound = await wait_pod(store, "train", scheduled)
    assert bound["spec"]["nodeName"] == "gpu-a"
    assert [c["status"] for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"] == ["True"]
    assert events(store, "train") == [("Normal", "Scheduled", "Successfully assigned default/train to gpu-a")]


async def test_unschedulable_pod_waits_and_is_bound_when_capacity_frees(store: ObjectStore) -> None:
    store.create("pods", gpu_pod("first", 2))
    await wait_pod(store, "first", scheduled)
    store.create("pods", gpu_pod("second", 2))
    pending = await wait_pod(store, "second", unschedulable)
    message = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient nvidia.com/gpu. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod.."
    )
    condition = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (condition["status"], condition["message"]) == ("False", message)
    assert events(store, "second") == [("Warning", "FailedScheduling", message)]
    versions = store.resource_version
    await asyncio.sleep(0.2)
    assert store.resource_version == versions, "an unschedulable pod is not retried in a loop"
    store.mutate("pods", "default", "first", lambda p: p["status"].update(phase="Succeeded"))
    assert (await wait_pod(store, "second", scheduled))["spec"]["nodeName"] == "gpu-a"


async def test_node_changes_retry_and_tolerations_open_tainted_nodes(store: ObjectStore) -> None:
    store.create("pods", gpu_pod("big", 4))
    await wait_pod(store, "big", unschedulable)
    store.create("pods", gpu_pod("tolerant", 4, tolerations=[{"key": "dedicated", "operator": "Exists"}]))
    assert (await wait_pod(store, "tolerant", scheduled))["spec"]["nodeName"] == "gpu-b"
    store.create("nodes", node("gpu-c", "virtual", gpus=8))
    assert (await wait_pod(store, "big", scheduled))["spec"]["nodeName"] == "gpu-c"
    [(_, _, _), (kind, reason, _)] = events(store, "big")
    assert (kind, reason) == ("Normal", "Scheduled")


async def test_node_selector_and_many_pods_spread_by_least_allocated(store: ObjectStore) -> None:
    for i in range(6):
        container = {"name": "main", "image": "x", "resources": {"requests": {"cpu": "1"}}}
        store.create(
            "pods", pod(f"p{i}", container, nodeSelector={"kubernetes.io/hostname": "nowhere"} if i == 5 else {})
        )
    placed = [(await wait_pod(store, f"p{i}", scheduled))["spec"]["nodeName"] for i in range(5)]
    assert placed == ["cpu", "gpu-a", "cpu", "gpu-a", "cpu"]  # least allocated first, ties by name
    stuck = await wait_pod(store, "p5", unschedulable)
    assert stuck["status"]["conditions"][-1]["message"].startswith(
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
        "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption"
    )
