"""A dispatched pod's whole run in the pod runner, in one process: create, follow, finish.

Usage: [PYTHONPATH=<tree>] .venv/bin/python bench/runner_path.py [--pods N] [--wave W] [--rounds R] [--count]

What `bench/follow_path.py` measures (a `ClusterRuntime`'s handling of a dispatched pod's 8 watch events and the
real `Follower` over the real SQLite store and journal), plus the rest of a `PodRunner.run`: the check of the
cluster placed at acceptance and the create (`Creator`), the log follower's two reads (its line, then the
completeness check of decision 0033, which reads it again and skips it), the result stored with the held
lines and events, the delete and the record closed (`Finisher`). The Kubernetes API is a fake of the pod path's
`PodCluster` that answers at once (no HTTP: the HTTP/2 client is measured in `bench/h2_engine.py`), the
journal is configured as the gateway's (`log_hold_seconds`). Prints the event loop thread's CPU time a pod
(`time.thread_time`: the store's writer thread, whose batching moves with the machine's load, left out), best
of R rounds; `--count` also counts what a pod costs the loop (tasks, timers, futures, callbacks) on the standard
loop. Nothing is asserted but that every pod succeeded, its line and XCom stored once.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

if __package__ in (None, ""):  # appended, not first: PYTHONPATH=<tree> decides which gateway is measured
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.follow_path import GATEWAY, NS, STARTED, best_of, lives, pod, turns
from gateway import domain
from gateway.clusters.kubeapi.decode import EventType, WatchEvent
from gateway.clusters.runtime import ClusterRuntime
from gateway.clusters.tracking import PodTrack
from gateway.placement import engine
from gateway.pods.creation import Creator, placed_at_acceptance
from gateway.pods.finishing import Finisher
from gateway.pods.following import Follower
from gateway.pods.journal import LOG_HOLD_SECONDS, Journal
from gateway.pods.runner import Phases, PodRunner
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import SqlStore

XCOM = '{"bench": true}'


class Cluster:
    """The pod path's `PodCluster` over a runtime whose watches are not started; the API answers at once."""

    def __init__(self, runtime: ClusterRuntime) -> None:
        self.runtime = runtime
        self.name, self.region = "c", "r"
        self.created: list[str] = []
        self.deleted = 0
        self.reads = 0

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> object:
        self.created.append(body["metadata"]["name"])
        return None

    async def delete_pod(self, namespace: str, name: str, *, grace_seconds: int) -> object:
        self.deleted += 1
        return None

    def track(self, namespace: str, name: str) -> PodTrack:
        return self.runtime.track(namespace, name)

    def untrack(self, namespace: str, name: str) -> None:
        self.runtime.untrack(namespace, name)

    async def replay_events(self, namespace: str, name: str) -> None:
        return None

    async def stream_logs(self, namespace: str, pod: str, container: str, **_: Any) -> AsyncIterator[str]:
        self.reads += 1
        yield f"{STARTED.replace('Z', '.000000000Z')} hello from {pod}"


class Clusters:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def find(self, name: str) -> Cluster | None:
        return self.cluster if name == self.cluster.name else None

    def serves(self, cluster: object) -> bool:
        return cluster is self.cluster

    def snapshots(self) -> list[domain.ClusterSnapshot]:
        return [self.cluster.runtime.snapshot()]

    def snapshot(self, name: str) -> domain.ClusterSnapshot | None:
        return self.cluster.runtime.snapshot() if name == self.cluster.name else None

    async def wait_changed(self, within: float) -> None:
        await asyncio.sleep(within)


def ended(name: str) -> dict[str, Any]:
    """The pod's end as the simulator shows it: its main container's termination message carries the XCom."""
    done = pod(name, "Succeeded", node="n1", conditions=[{"type": "PodScheduled", "status": "True"}],
               containers=[{"name": "base", "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": XCOM}}}])  # fmt: skip
    return done


def runtime_with_a_node() -> ClusterRuntime:
    spec = domain.ClusterSpec(name="c", provider="kubeconfig", credentials=SimpleNamespace(), region="r")  # type: ignore[arg-type]
    unused: Any = SimpleNamespace(name="c")
    runtime = ClusterRuntime(spec, unused, provider=unused, gateway_id=GATEWAY, on_change=lambda: None, probe_interval=5.0)
    node = {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "1000", "memory": "4000Gi", "pods": "100000"},
            "conditions": [{"type": "Ready", "status": "True"}]}}  # fmt: skip
    runtime._on_node(WatchEvent(type=EventType.RELISTED, objects=(node,)))
    runtime._on_pod(WatchEvent(type=EventType.RELISTED, objects=()))
    runtime.health.observe(None)
    return runtime


async def one_round(directory: Path, pods: int, wave: int) -> float:
    store = await SqlStore.open(path=directory / "gateway.sqlite")
    journal = Journal(store, log_hold_seconds=LOG_HOLD_SECONDS)
    settings = LiveSettings(Settings())
    cluster = Cluster(runtime_with_a_node())
    clusters = Clusters(cluster)
    phases = Phases(
        clusters=clusters,  # type: ignore[arg-type]
        creator=Creator(clusters, store, journal, settings),  # type: ignore[arg-type]
        follower=Follower(clusters, store, journal, settings),  # type: ignore[arg-type]
        finisher=Finisher(store, journal, clusters),  # type: ignore[arg-type]
    )
    handle = {"pod": cluster.runtime._on_pod, "event": cluster.runtime._on_event}
    cpu = 0.0
    try:
        for start in range(0, pods, wave):
            runners = []
            for i in range(start, min(start + wave, pods)):
                manifest = {"metadata": {"name": f"p{i:06d}", "namespace": NS},
                            "spec": {"containers": [{"name": "base", "resources": {"requests": {"cpu": "100m"}}}]}}  # fmt: skip
                request = domain.PodRequest(request_id=f"r{i:06d}", pod=manifest, xcom_mode=domain.XcomMode.AUTO)
                record = domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC))
                record = placed_at_acceptance(record, engine.placement(request, clusters.snapshots()))
                stored, _ = await store.create_pod_record(record)
                runners.append(PodRunner(record=stored, phases=phases, fresh=True))
            names = [runner.record.name for runner in runners]  # placed at acceptance: created under this name
            steps = [[*lives(name)[:-1], ("pod", WatchEvent(type=EventType.MODIFIED, object=ended(name)))] for name in names]
            await turns()
            began, counted = time.thread_time(), collections.Counter(Counting.counts)
            tasks = [asyncio.create_task(runner.run()) for runner in runners]
            await turns()
            assert cluster.created[-len(names):] == names, "not all created as placed"
            for step in range(len(steps[0])):
                for life in steps:
                    kind, event = life[step]
                    handle[kind](event)
                await turns()  # the loop runs between two chunks of the watches
            async with asyncio.timeout(60):
                await asyncio.gather(*tasks)
            for name in names:  # the delete's answer, as the pods watch shows it
                handle["pod"](WatchEvent(type=EventType.DELETED, object=ended(name)))
            cpu += time.thread_time() - began
            MEASURED.update(Counting.counts - counted)
            for runner in runners:
                record = runner.record
                assert record.finished_at is not None and record.result is not None, record
                assert record.result.phase is domain.PodPhase.SUCCEEDED and record.result.xcom_json == XCOM, record.result
                journal.forget(record.request.request_id)
        await check_journals(store, pods)
        assert cluster.deleted == pods and cluster.reads == 2 * pods, (cluster.deleted, cluster.reads)
    finally:
        await journal.close()
        await store.close()
    return cpu


async def check_journals(store: SqlStore, pods: int) -> None:
    """Every pod's journal holds its one log line once, its 4 Kubernetes events, its Running and its result."""
    for i in range(pods):
        kinds = collections.Counter(event.kind for _, event in await store.read_events(f"r{i:06d}", 0, 100))
        assert kinds[domain.JournalKind.LOG] == 1 and kinds[domain.JournalKind.RESULT] == 1, kinds
        assert kinds[domain.JournalKind.K8S_EVENT] == 4, kinds


MEASURED: collections.Counter[str] = collections.Counter()  # the loop's work while the runs were measured


class Counting(asyncio.SelectorEventLoop):
    """The standard loop, counting what the measured code asks of it (uvloop's are C: not countable)."""

    counts: collections.Counter[str] = collections.Counter()

    def create_task(self, *args: Any, **kwargs: Any) -> Any:
        self.counts["tasks"] += 1
        return super().create_task(*args, **kwargs)

    def create_future(self) -> Any:
        self.counts["futures (create_future)"] += 1
        return super().create_future()

    def call_at(self, *args: Any, **kwargs: Any) -> Any:
        self.counts["timers (call_at/call_later)"] += 1
        return super().call_at(*args, **kwargs)

    def call_soon(self, *args: Any, **kwargs: Any) -> Any:
        self.counts["callbacks (call_soon)"] += 1
        return super().call_soon(*args, **kwargs)

    def _run_once(self) -> None:
        self.counts["loop iterations"] += 1
        super()._run_once()  # type: ignore[misc]


async def main(args: argparse.Namespace) -> None:
    best = await best_of(args.rounds, one_round, args.pods, args.wave)
    print(f"runner path: {args.pods} pods in waves of {args.wave}: {best / args.pods * 1e6:.0f} us CPU a pod "
          f"(the loop's thread, best of {args.rounds}; create, 8 watch events, follow, 2 log reads, result, delete)")  # fmt: skip
    print(f"SUMMARY runner_path: {best / args.pods * 1e6:.0f} us CPU a pod")


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--wave", type=int, default=200, help="pods whose events are handed on together")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", action="store_true", help="count the loop's work a pod (standard loop, one round)")
    args = parser.parse_args(argv)
    if not args.count:
        try:
            import uvloop  # the gateway's loop when installed (server.event_loop auto)
        except ImportError:
            asyncio.run(main(args))
        else:
            uvloop.run(main(args))
        return
    args.rounds = 1
    loop = Counting()
    try:
        loop.run_until_complete(main(args))
    finally:
        loop.close()
    for what, n in sorted(MEASURED.items()):
        print(f"  {what}: {n / args.pods:.2f} a pod")


if __name__ == "__main__":
    run()
