"""Live capacity of one cluster, kept from its node and pod watches. Pure bookkeeping, no I/O.

Per-node usage is updated incrementally on each pod event, so 10,000 pods cost a dict entry each
and a snapshot costs one pass over the nodes, not over the pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from gateway import domain, errors
from gateway.placement.node_fit import effective_requests
from gateway.placement.quantity import parse_quantity, to_millis, to_units

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
_ZERO = Fraction(0)  # a default made once: Fraction(0) is ~1 us a construction


@dataclass(frozen=True)
class PodUsage:
    node: str
    cpu_millis: int
    memory_bytes: int
    gpus: int


def sizing(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """Everything `pod_usage` reads: while it is equal, the usage is too (compared, not parsed again)."""
    spec = pod.get("spec") or {}
    ended = (pod.get("status") or {}).get("phase") in TERMINAL_PHASES
    return (
        spec.get("nodeName"),
        ended,
        [c.get("resources") for c in spec.get("containers") or ()],
        [(c.get("resources"), c.get("restartPolicy")) for c in spec.get("initContainers") or ()],
        spec.get("overhead"),
    )


def pod_usage(pod: Mapping[str, Any]) -> PodUsage | None:
    """What a pod takes from its node; None once it is unbound or has ended."""
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return None
    try:
        requests = effective_requests(spec)
    except (errors.InvalidArgument, ValueError):
        requests = {}  # a pod the API server accepted but we cannot parse: count its presence only
    return PodUsage(
        node=node,
        cpu_millis=to_millis(requests.get("cpu", _ZERO)),
        memory_bytes=to_units(requests.get("memory", _ZERO)),
        gpus=to_units(requests.get(domain.GPU_RESOURCE, _ZERO)),
    )


def _quantity(allocatable: Mapping[str, Any], key: str) -> Fraction:
    try:
        return parse_quantity(allocatable.get(key, 0))
    except ValueError:
        return Fraction(0)


def node_state(node: Mapping[str, Any]) -> domain.NodeState:
    """A node as placement sees it, before usage is added."""
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return domain.NodeState(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        taints=tuple(
            domain.NodeTaint(key=t.get("key", ""), value=t.get("value", ""), effect=t.get("effect", "NoSchedule"))
            for t in spec.get("taints") or []
        ),
        schedulable=not spec.get("unschedulable", False),
        ready=ready,
        cpu_millis=to_millis(_quantity(allocatable, "cpu")),
        memory_bytes=to_units(_quantity(allocatable, "memory")),
        gpus=to_units(_quantity(allocatable, domain.GPU_RESOURCE)),
    )


class CapacityBook:
    """Nodes and per-node usage of one cluster."""

    def __init__(self) -> None:
        self._nodes: dict[str, domain.NodeState] = {}
        self._pods: dict[str, PodUsage] = {}  # by pod uid
        # By pod uid, what its usage was computed from: a pod's status changes (several times in its life)
        # neither re-parse its quantities nor make placement's per-cluster memo start again.
        self._sizings: dict[str, tuple[Any, ...]] = {}
        self._used: dict[str, list[int]] = {}  # node -> [cpu, memory, gpus]
        self._snapshot: tuple[domain.NodeState, ...] | None = None  # until a node or a usage changes

    def reset(
        self, nodes: Iterable[Mapping[str, Any]] | None = None, pods: Iterable[Mapping[str, Any]] | None = None
    ) -> None:
        self._snapshot = None
        if nodes is not None:
            self._nodes = {}
            for n in nodes:
                self.set_node(n)
        if pods is not None:
            self._pods, self._used, self._sizings = {}, {}, {}
            for p in pods:
                self.set_pod(p)

    def set_node(self, node: Mapping[str, Any]) -> None:
        state = node_state(node)
        if self._nodes.get(state.name) != state:  # a status heartbeat alone leaves the snapshot as it was
            self._nodes[state.name] = state
            self._snapshot = None

    def remove_node(self, name: str) -> None:
        self._nodes.pop(name, None)
        self._snapshot = None

    def set_pod(self, pod: Mapping[str, Any]) -> bool:
        """Adds or updates a pod; True when a node's usage changed (most of a pod's changes leave it as it was)."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        now = sizing(pod)
        if self._sizings.get(uid) == now:
            return False
        self._sizings[uid] = now
        old, usage = self._pods.pop(uid, None), pod_usage(pod)
        if usage is not None:
            self._pods[uid] = usage
        if old == usage:
            return False
        self._apply(old, -1)
        self._apply(usage, +1)
        return True

    def remove_pod(self, pod: Mapping[str, Any]) -> bool:
        """True when a node's usage changed (the pod was bound and had not ended)."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        self._sizings.pop(uid, None)
        old = self._pods.pop(uid, None)
        self._apply(old, -1)
        return old is not None

    def _apply(self, usage: PodUsage | None, sign: int) -> None:
        if usage is None:
            return
        self._snapshot = None
        used = self._used.setdefault(usage.node, [0, 0, 0])
        used[0] += sign * usage.cpu_millis
        used[1] += sign * usage.memory_bytes
        used[2] += sign * usage.gpus

    def nodes(self) -> tuple[domain.NodeState, ...]:
        """The same tuple until something changes: placement remembers per-cluster work by its identity."""
        if self._snapshot is None:
            self._snapshot = self._build_nodes()
        return self._snapshot

    def _build_nodes(self) -> tuple[domain.NodeState, ...]:
        out = []
        for name in sorted(self._nodes):
            cpu, memory, gpus = self._used.get(name, (0, 0, 0))
            out.append(replace(self._nodes[name], cpu_millis_used=cpu, memory_bytes_used=memory, gpus_used=gpus))
        return tuple(out)

    @property
    def pod_count(self) -> int:
        return len(self._pods)
