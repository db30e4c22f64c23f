"""Fakes of our own pod-path protocols (`PodCluster`, `Clusters`) for unit tests of creation and following.

A `FakeCluster` keeps pods in a dict and answers as the API server would (AlreadyExists, NotFound),
with scripted faults: each queued create fault either refuses the call or applies the create and
then loses the answer. Errors are built by the real error tree (`error_for`, `unreachable`).
The store is the real SQLite store in a temporary directory.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import domain
from gateway.clusters.kubeapi import errors as ke
from gateway.clusters.kubeapi.channels import ExecResult
from gateway.clusters.tracking import PodTrack
from gateway.pods.cluster import PodCluster
from gateway.pods.journal import Journal, decode
from gateway.pods.runstate import RunState
from gateway.store.sql import SqlStore

Key = tuple[str, str]
POD_CALL = "POST /api/v1/namespaces/default/pods"


def answered(status: int, reason: str, message: str = "why") -> ke.KubeError:
    body = {"kind": "Status", "code": status, "reason": reason, "message": message}
    return ke.error_for(status, body, cluster="fake", call=POD_CALL)


def no_answer(*, maybe_sent: bool = True) -> ke.KubeError:
    return ke.unreachable("fake", POD_CALL, ConnectionResetError("connection reset by peer"), maybe_sent=maybe_sent)


@dataclass(frozen=True)
class CreateFault:
    error: ke.KubeError
    applied: bool = False  # the server acted on the create before the error (a lost answer)


def lost_answer() -> CreateFault:
    """The create is applied, then the connection drops before the answer."""
    return CreateFault(no_answer(), applied=True)


@dataclass(eq=False)
class FakeCluster:
    name: str
    region: str = "eu-west-1"
    cordoned: bool = False
    weight: int = 100  # the registration's placement weight
    pods: dict[Key, dict[str, Any]] = field(default_factory=dict)
    create_faults: list[CreateFault] = field(default_factory=list)  # one consumed per create call
    get_faults: list[ke.KubeError] = field(default_factory=list)  # one consumed per get call
    logs: dict[str, list[str]] = field(default_factory=dict)  # container -> "TIMESTAMP text" lines
    creates: list[str] = field(default_factory=list)  # pod names, one per create call
    gets: list[str] = field(default_factory=list)  # pod names, one per get call
    deletes: list[str] = field(default_factory=list)
    execs: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    exec_stdout: bytes = b""
    tracks: dict[Key, PodTrack] = field(default_factory=dict)
    events: dict[Key, list[tuple[tuple[str, int], domain.KubernetesEvent]]] = field(default_factory=dict)  # as kept
    replays: list[str] = field(default_factory=list)  # pod names, one per replay_events call
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.synced.set()

    # --- PodCluster ------------------------------------------------------------------------

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        name = body["metadata"]["name"]
        self.creates.append(name)
        fault = self.create_faults.pop(0) if self.create_faults else None
        if fault is not None and not fault.applied:
            raise fault.error
        if (namespace, name) in self.pods:
            raise answered(409, "AlreadyExists", f'pods "{name}" already exists')
        self.set_pod(namespace, name, copy.deepcopy(dict(body)))
        if fault is not None:
            raise fault.error
        return body

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any]:
        self.gets.append(name)
        if self.get_faults:
            raise self.get_faults.pop(0)
        if (namespace, name) not in self.pods:
            raise answered(404, "NotFound", f'pods "{name}" not found')
        return self.pods[(namespace, name)]

    async def delete_pod(self, namespace: str, name: str, *, grace_seconds: int) -> object:
        self.deletes.append(name)
        if self.pods.pop((namespace, name), None) is None:
            raise answered(404, "NotFound", f'pods "{name}" not found')
        return {}

    async def exec(self, namespace: str, name: str, container: str, command: Sequence[str]) -> ExecResult:
        self.execs.append((container, tuple(command)))
        return ExecResult(0, self.exec_stdout, b"")

    async def stream_logs(
        self, namespace: str, pod: str, container: str, *, follow: bool, timestamps: bool, since_time: datetime | None
    ) -> AsyncIterator[str]:
        for line in self.logs.get(container, []):
            yield line

    def track(self, namespace: str, name: str) -> PodTrack:
        if (namespace, name) not in self.tracks:
            self.tracks[(namespace, name)] = PodTrack(self.synced)
            self.tracks[(namespace, name)].update(self.pods.get((namespace, name)))
        return self.tracks[(namespace, name)]

    def untrack(self, namespace: str, name: str) -> None:
        self.tracks.pop((namespace, name), None)

    async def replay_events(self, namespace: str, name: str) -> None:
        self.replays.append(name)
        track = self.tracks.get((namespace, name))
        for key, event in self.events.get((namespace, name), []) if track is not None else []:
            track.add_event(key, event)

    # --- the test's side -------------------------------------------------------------------

    def add_event(self, namespace: str, name: str, key: tuple[str, int], event: domain.KubernetesEvent) -> None:
        """An event of the pod, kept by the cluster (listed again by `replay_events`) and given to its track."""
        self.events.setdefault((namespace, name), []).append((key, event))
        if (namespace, name) in self.tracks:
            self.tracks[(namespace, name)].add_event(key, event)

    def set_pod(self, namespace: str, name: str, pod: dict[str, Any] | None) -> None:
        """Changes the pod as the cluster's watch would report it."""
        if pod is None:
            self.pods.pop((namespace, name), None)
        else:
            self.pods[(namespace, name)] = pod
        if (namespace, name) in self.tracks:
            self.tracks[(namespace, name)].update(pod)


@dataclass
class FakeClusters:
    clusters: dict[str, FakeCluster]
    waits: int = 0

    def find(self, name: str) -> FakeCluster | None:
        return self.clusters.get(name)

    def serves(self, cluster: PodCluster) -> bool:
        return self.clusters.get(cluster.name) is cluster

    def snapshots(self) -> list[domain.ClusterSnapshot]:
        return [snapshot(c) for c in self.clusters.values()]

    def snapshot(self, name: str) -> domain.ClusterSnapshot | None:
        return next((s for s in self.snapshots() if s.spec.name == name), None)

    async def wait_changed(self, within: float) -> None:
        self.waits += 1
        await asyncio.sleep(0)

    def all_pods(self) -> list[tuple[str, str]]:
        """(cluster, pod name) of every pod on every cluster."""
        return [(c.name, name) for c in self.clusters.values() for _, name in c.pods]


def snapshot(cluster: FakeCluster) -> domain.ClusterSnapshot:
    spec = domain.ClusterSpec(
        name=cluster.name, provider="sim", credentials=domain.CredentialsRef(source="sim"), region=cluster.region,
        weight=cluster.weight,
    )
    node = domain.NodeState(name="n1", cpu_millis=8000, memory_bytes=32 * 2**30)
    return domain.ClusterSnapshot(spec=spec, health=domain.ClusterHealth.HEALTHY, cordoned=cluster.cordoned, nodes=(node,))


def pod_request(request_id: str = "r1", **extra: Any) -> domain.PodRequest:
    container = {"name": "base", "image": "python:3.12", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
    pod = {"metadata": {"name": "job"}, "spec": {"containers": [container]}}
    return domain.PodRequest(request_id=request_id, pod=pod, **extra)


async def opened_store(tmp_path: Path) -> tuple[SqlStore, Journal]:
    store = await SqlStore.open(path=tmp_path / "gateway.sqlite")
    return store, Journal(store)


async def submitted(store: SqlStore, request: domain.PodRequest) -> RunState:
    """A queued request as the dispatcher stores it before its runner starts."""
    record = domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC))
    stored, _ = await store.create_pod_record(record)
    return RunState(stored)


async def journalled(store: SqlStore, journal: Journal, request_id: str) -> list[domain.StreamItem]:
    """Everything journalled for the request so far, in order (buffered log lines flushed first)."""
    await journal.flush(request_id)
    return [decode(seq, event).item for seq, event in await store.read_events(request_id)]
