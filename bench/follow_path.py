"""A pod's watch events to its follower, in one process: what the cluster's runtime and the follower do for them.

Usage: .venv/bin/python bench/follow_path.py [--pods N] [--wave W] [--rounds R]
The events of a dispatched pod as the simulator sends them (pods watch: ADDED, bound, Running, Succeeded; events
watch: Scheduled, Pulled, Created, Started) are handed to a `ClusterRuntime`'s handlers as its watches hand them,
W pods at a time, each pod followed by the real `Follower` over the real SQLite store and journal (its Running
written, its events held, its one log line read and read again at the end); the loop runs between the steps as it
does between the watches' chunks. No HTTP, no gRPC, no creation or finish: the path this helper changed, measured
where the dispatch bench's noise (±10 % at the session's load) hides a few percent. Prints the event loop thread's
CPU time a pod (`time.thread_time`: the store's writer thread, whose batching moves with the machine's load, left
out), best of R rounds. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import domain
from gateway.clusters.kubeapi.decode import EventType, WatchEvent
from gateway.clusters.runtime import ClusterRuntime
from gateway.clusters.tracking import PodTrack
from gateway.pods.following import Follower
from gateway.pods.journal import Journal
from gateway.pods.runstate import RunState
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import SqlStore

GATEWAY = "gw"
NS = "default"
STARTED = "2026-12-05T10:00:00Z"


class Cluster:
    """The pod path's view of one cluster (`PodCluster`) over a runtime whose watches are not started."""

    def __init__(self, runtime: ClusterRuntime) -> None:
        self.runtime = runtime
        self.name, self.region = "c", "r"

    def track(self, namespace: str, name: str) -> PodTrack:
        return self.runtime.track(namespace, name)

    def untrack(self, namespace: str, name: str) -> None:
        self.runtime.untrack(namespace, name)

    async def stream_logs(self, namespace: str, pod: str, container: str, **_: Any) -> AsyncIterator[str]:
        yield f"{STARTED.replace('Z', '.000000000Z')} hello from {pod}"


class Clusters:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def find(self, name: str) -> Cluster:
        return self.cluster

    def serves(self, cluster: object) -> bool:
        return True


def pod(name: str, phase: str, *, node: str = "", containers: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {"containers": [{"name": "base", "resources": {"requests": {"cpu": "100m"}}}]}
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase}
    if conditions:
        status["conditions"] = conditions
    if containers is not None:
        status["containerStatuses"] = containers
    return {"metadata": {"name": name, "namespace": NS, "uid": f"u-{name}", "labels": {domain.MANAGED_BY_LABEL: GATEWAY}},
            "spec": spec, "status": status}  # fmt: skip


def lives(name: str) -> list[tuple[str, WatchEvent]]:
    """A dispatched pod's watch events, in the order the two watches deliver them (one step of each watch apart)."""
    scheduled = [{"type": "PodScheduled", "status": "True"}]
    waiting = [{"name": "base", "state": {"waiting": {"reason": "ContainerCreating"}}}]
    running = [{"name": "base", "state": {"running": {"startedAt": STARTED}}}]
    ended = [{"name": "base", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]

    def change(kind: EventType, obj: dict[str, Any]) -> tuple[str, WatchEvent]:
        return "pod", WatchEvent(type=kind, object=obj)

    def event(i: int, reason: str) -> tuple[str, WatchEvent]:
        obj = {"metadata": {"uid": f"e{i}-{name}"}, "involvedObject": {"kind": "Pod", "namespace": NS, "name": name},
               "type": "Normal", "reason": reason, "message": reason.lower(), "count": 1, "lastTimestamp": STARTED}  # fmt: skip
        return "event", WatchEvent(type=EventType.ADDED, object=obj)

    return [
        change(EventType.ADDED, pod(name, "Pending")),
        change(EventType.MODIFIED, pod(name, "Pending", node="n1", conditions=scheduled, containers=waiting)),
        event(0, "Scheduled"),
        change(EventType.MODIFIED, pod(name, "Running", node="n1", conditions=scheduled, containers=running)),
        event(1, "Pulled"),
        event(2, "Created"),
        event(3, "Started"),
        change(EventType.MODIFIED, pod(name, "Succeeded", node="n1", conditions=scheduled, containers=ended)),
    ]


async def turns(n: int = 30) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def one_round(directory: Path, pods: int, wave: int) -> float:
    store = await SqlStore.open(path=directory / "gateway.sqlite")
    journal = Journal(store)
    spec: Any = SimpleNamespace(name="c")
    unused: Any = SimpleNamespace(name="c")
    runtime = ClusterRuntime(spec, unused, provider=unused, gateway_id=GATEWAY, on_change=lambda: None, probe_interval=5.0)
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
            "conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip
    runtime._on_node(WatchEvent(type=EventType.RELISTED, objects=(node,)))
    runtime._on_pod(WatchEvent(type=EventType.RELISTED, objects=()))
    follower = Follower(Clusters(Cluster(runtime)), store, journal, LiveSettings(Settings()))  # type: ignore[arg-type]
    handle = {"pod": runtime._on_pod, "event": runtime._on_event}
    cpu = 0.0
    try:
        for start in range(0, pods, wave):
            names = [f"p{i:06d}" for i in range(start, min(start + wave, pods))]
            states = []
            for name in names:
                request = domain.PodRequest(request_id=name, pod={"metadata": {"name": name}, "spec": {"containers": [{"name": "base"}]}})
                record, _ = await store.create_pod_record(domain.PodRecord(
                    request=request, phase=domain.PodPhase.PENDING, cluster="c", namespace=NS, name=name,
                    created_at=datetime.now(UTC)))  # fmt: skip
                states.append(RunState(record, fresh=True))
            await turns()
            began = time.thread_time()
            for state in states:
                runtime.track(NS, state.record.name)  # tracked from before the create, as the creation does
            tasks = [asyncio.create_task(follower.follow(state)) for state in states]
            await turns()
            steps = [lives(name) for name in names]
            for step in range(len(steps[0])):
                for life in steps:
                    kind, event = life[step]
                    handle[kind](event)
                await turns()  # the loop runs between two chunks of the watches
            async with asyncio.timeout(60):
                endings = await asyncio.gather(*tasks)
            cpu += time.thread_time() - began
            assert all(e.result.phase is domain.PodPhase.SUCCEEDED for e in endings)
            for name in names:
                runtime.untrack(NS, name)
                handle["pod"](WatchEvent(type=EventType.DELETED, object=pod(name, "Succeeded")))
            for state in states:
                await journal.flush(state.request_id)
                journal.forget(state.request_id)
    finally:
        await journal.close()
        await store.close()
    return cpu


async def best_of(
    rounds: int, round_: Callable[[Path, int, int], Awaitable[float]], pods: int, wave: int
) -> float:
    """The least CPU of `rounds` rounds, each in a fresh state directory (runner_path.py too)."""
    best = float("inf")
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as directory:
            best = min(best, await round_(Path(directory), pods, wave))
    return best


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--wave", type=int, default=200, help="pods whose events are handed on together")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    best = await best_of(args.rounds, one_round, args.pods, args.wave)
    print(f"follow path: {args.pods} pods in waves of {args.wave}: {best / args.pods * 1e6:.0f} us CPU a pod "
          f"(the loop's thread, best of {args.rounds}; the runtime's handling of 8 watch events, the follower, its journal)")  # fmt: skip
    print(f"SUMMARY follow_path: {best / args.pods * 1e6:.0f} us CPU a pod")


if __name__ == "__main__":
    asyncio.run(main())
