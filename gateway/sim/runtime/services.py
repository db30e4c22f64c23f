"""What a pod runner needs from its kubelet (status writes, events, lookups), as a protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.sim.logstore import LogStore
from gateway.sim.podstatus import PodState
from gateway.sim.runtime.config import RuntimeConfig
from gateway.sim.runtime.spec import ApiAccess


class PodServices(Protocol):
    config: RuntimeConfig
    log_store: LogStore

    def publish(self, state: PodState) -> bool:
        """Writes the pod's status; False when the pod is gone (the runner then stops)."""

    def event(self, state: PodState, kind: str, reason: str, message: str, field_path: str = "") -> None:
        """Records an Event about the pod (kind: Normal or Warning), from the kubelet on its node."""

    def lookup(self, resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """An object (secret, configmap) from the store, or None."""

    def now(self) -> str:
        """The current time as RFC 3339 (the kubelet's clock)."""

    def api_access(self, state: PodState, pod: Mapping[str, Any]) -> ApiAccess | None:
        """The pod's way to its API server (token minted for its ServiceAccount), or None."""

    def finished(self, state: PodState) -> None:
        """The runner has stopped everything of this pod (deletion may complete)."""


def field_path(state: PodState, container: str) -> str:
    """The involvedObject.fieldPath of a container's events, e.g. spec.containers{main}."""
    kind = "initContainers" if any(c.name == container for c in state.init_containers) else "containers"
    return f"spec.{kind}{{{container}}}"
