"""What the pod path needs of a cluster: two small protocols, and their adapters over the registry.

Creation and following reach a cluster only through `PodCluster` (create, get, delete, exec, logs,
track) and find one only through `Clusters`, so both phases are unit-tested with fakes of these; the
gateway runs them over `RegistryClusters`, which hands out the registered `ClusterRuntime`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gateway import domain, errors
from gateway.clusters.kubeapi.channels import ExecResult
from gateway.clusters.registry import ClusterRuntime, Registry
from gateway.clusters.tracking import PodTrack


class PodCluster(Protocol):
    """One registered cluster, as the pod path uses it. Calls raise the kubeapi errors (`KubeError`)."""

    @property
    def name(self) -> str: ...

    @property
    def region(self) -> str: ...

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> object: ...

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any]: ...

    async def delete_pod(self, namespace: str, name: str, *, grace_seconds: int) -> object: ...

    async def exec(self, namespace: str, name: str, container: str, command: Sequence[str]) -> ExecResult: ...

    def stream_logs(
        self, namespace: str, pod: str, container: str, *, follow: bool, timestamps: bool, since_time: datetime | None
    ) -> AsyncIterator[str]: ...

    def track(self, namespace: str, name: str) -> PodTrack:
        """The pod as the cluster's shared watch sees it (the same track for the same pod until untracked)."""
        ...

    def untrack(self, namespace: str, name: str) -> None: ...

    async def replay_events(self, namespace: str, name: str) -> None:
        """The tracked pod's events as the cluster holds them now, given to its track again (each once)."""
        ...


class Clusters(Protocol):
    """The registered clusters: the candidates of a placement, and the one a pod runs on."""

    def find(self, name: str) -> PodCluster | None: ...

    def serves(self, cluster: PodCluster) -> bool:
        """True while `cluster` is still what its name is registered as (an update replaces it)."""
        ...

    def snapshots(self) -> list[domain.ClusterSnapshot]: ...

    def snapshot(self, name: str) -> domain.ClusterSnapshot | None:
        """The snapshot of the cluster registered as `name` (the one `snapshots` holds), or None."""
        ...

    async def wait_changed(self, within: float) -> None:
        """Returns when capacity, health or registrations change, or after `within` seconds."""
        ...


def get(clusters: Clusters, name: str) -> PodCluster:
    cluster = clusters.find(name)
    if cluster is None:
        raise errors.NotFound(f"no cluster named {name!r} is registered")
    return cluster


@dataclass(frozen=True, slots=True)
class RuntimeCluster:
    """A `PodCluster` over a registered runtime; equal to another while both wrap the same runtime."""

    runtime: ClusterRuntime

    @property
    def name(self) -> str:
        return self.runtime.name

    @property
    def region(self) -> str:
        return self.runtime.spec.region

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> object:
        await self.runtime.client.create_pod(namespace, body, answer=False)  # nobody reads the answer: not decoded
        return None

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any]:
        return await self.runtime.client.get_pod(namespace, name)

    async def delete_pod(self, namespace: str, name: str, *, grace_seconds: int) -> object:
        await self.runtime.client.delete_pod(namespace, name, grace_seconds=grace_seconds, answer=False)  # not decoded
        return None

    async def exec(self, namespace: str, name: str, container: str, command: Sequence[str]) -> ExecResult:
        return await self.runtime.client.exec(namespace, name, container, command)

    def stream_logs(
        self, namespace: str, pod: str, container: str, *, follow: bool, timestamps: bool, since_time: datetime | None
    ) -> AsyncIterator[str]:
        return self.runtime.client.stream_logs(
            namespace, pod, container, follow=follow, timestamps=timestamps, since_time=since_time
        )

    def track(self, namespace: str, name: str) -> PodTrack:
        return self.runtime.track(namespace, name)

    def untrack(self, namespace: str, name: str) -> None:
        self.runtime.untrack(namespace, name)

    async def replay_events(self, namespace: str, name: str) -> None:
        await self.runtime.replay_events(namespace, name)


@dataclass(frozen=True, slots=True)
class RegistryClusters:
    """`Clusters` over the gateway's registry."""

    registry: Registry

    def find(self, name: str) -> RuntimeCluster | None:
        try:
            return RuntimeCluster(self.registry.get(name))
        except errors.NotFound:
            return None

    def serves(self, cluster: PodCluster) -> bool:
        """Asked at every look of every followed pod: the registered runtime compared, no wrapper made for it."""
        try:
            return isinstance(cluster, RuntimeCluster) and self.registry.get(cluster.name) is cluster.runtime
        except errors.NotFound:
            return False

    def snapshots(self) -> list[domain.ClusterSnapshot]:
        return self.registry.snapshots()

    def snapshot(self, name: str) -> domain.ClusterSnapshot | None:
        cluster = self.find(name)
        return None if cluster is None else cluster.runtime.snapshot()

    async def wait_changed(self, within: float) -> None:
        await self.registry.wait_changed(within)
