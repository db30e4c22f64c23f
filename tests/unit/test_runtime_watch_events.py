"""What a cluster's watch events trigger: a followed pod's follower wakes when what the gateway reads of the
pod changed, its log followers when the pod changed (not at its Kubernetes events), and placements waiting
for capacity when a snapshot would show something new. The runtime is not started: the events are handed to
it as its watches hand them."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace
from typing import Any

from gateway import domain
from gateway.clusters.kubeapi.decode import EventType, WatchEvent
from gateway.clusters.runtime import ClusterRuntime

GATEWAY = "gw"


def runtime(changes: list[int]) -> ClusterRuntime:
    unused_client: Any = SimpleNamespace(name="c")  # never called: the watches are not started
    spec: Any = SimpleNamespace(name="c")
    made = ClusterRuntime(spec, unused_client, provider=unused_client, gateway_id=GATEWAY,
                          on_change=lambda: changes.append(1), probe_interval=5.0)  # fmt: skip
    made._on_node(WatchEvent(type=EventType.RELISTED, objects=(node(),)))
    made._on_pod(WatchEvent(type=EventType.RELISTED, objects=()))
    return made


def node() -> dict[str, Any]:
    return {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi"},
                                                  "conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip


def pod(phase: str = "Pending", *, rv: str = "1", node_name: str | None = "n1", **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "resources": {"requests": {"cpu": "1"}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": rv,
                     "labels": {domain.MANAGED_BY_LABEL: GATEWAY}},
        "spec": spec,
        "status": {"phase": phase, **status},
    }  # fmt: skip


def scheduled(at: str) -> dict[str, str]:
    return {"type": "PodScheduled", "status": "True", "lastTransitionTime": f"2026-12-05T{at}Z"}


def modified(obj: dict[str, Any], kind: EventType = EventType.MODIFIED) -> WatchEvent:
    return WatchEvent(type=kind, object=copy.deepcopy(obj), resource_version=obj["metadata"]["resourceVersion"])


async def woken(task: asyncio.Task[None]) -> bool:
    for _ in range(5):  # a woken waiter's task finishes within a few loop turns
        await asyncio.sleep(0)
    return task.done()


async def test_a_change_of_fields_nobody_reads_wakes_no_follower_and_no_waiting_placement() -> None:
    changes: list[int] = []
    cluster = runtime(changes)
    track = cluster.track("ns", "p")
    cluster._on_pod(modified(pod(conditions=[scheduled("10:00:00")]), EventType.ADDED))
    held, before = track.pod, len(changes)
    assert held is not None and before >= 1 and cluster.snapshot().running_pods == 1
    await track.wait(None)  # takes the ADDED
    waiting = asyncio.create_task(track.wait(None))
    touched = pod(rv="2", podIP="10.0.0.7", conditions=[scheduled("10:00:01")])  # only what nobody reads
    touched["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    cluster._on_pod(modified(touched))
    assert not await woken(waiting) and track.pod is held and len(changes) == before
    cluster._on_pod(modified(pod("Running", rv="3")))  # its follower records Running: woken
    assert await woken(waiting) and track.pod is not held
    assert len(changes) == before  # still running on the same node with the same requests: no snapshot changed
    cluster._on_pod(modified(pod("Succeeded", rv="4")))  # frees its node's requests, one pod fewer running
    assert len(changes) == before + 1 and cluster.snapshot().running_pods == 0
    assert cluster.snapshot().nodes[0].cpu_millis_used == 0
    deleted = asyncio.create_task(track.wait(None))
    cluster._on_pod(modified(pod("Succeeded", rv="5"), EventType.DELETED))
    assert await woken(deleted) and track.pod is None


async def test_a_kubernetes_event_wakes_the_follower_and_not_the_log_followers() -> None:
    cluster = runtime([])
    track = cluster.track("ns", "p")
    cluster._on_pod(modified(pod("Running"), EventType.ADDED))
    await track.wait(None)
    follower = asyncio.create_task(track.wait(None))
    log_follower = asyncio.create_task(track.wait_next(30))
    await asyncio.sleep(0)
    event = {"metadata": {"uid": "e1", "resourceVersion": "9"}, "involvedObject": {"kind": "Pod", "namespace": "ns",
             "name": "p"}, "type": "Normal", "reason": "Pulled", "message": "pulled", "count": 1}  # fmt: skip
    cluster._on_event(WatchEvent(type=EventType.ADDED, object=event, resource_version="9"))
    assert await woken(follower) and [e.reason for e in track.drain_events()] == ["Pulled"]
    assert not await woken(log_follower)  # it waits for its container's end, which an event is not
    ended = pod("Running", rv="2", containerStatuses=[{"name": "main", "state": {"terminated": {"exitCode": 0}}}])
    cluster._on_pod(modified(ended))
    assert await woken(log_follower) and track.container_done("main")
