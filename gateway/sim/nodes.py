"""Node and namespace objects built from the config, and node failure/recovery as the node controller does it."""

from __future__ import annotations

import functools
from typing import Any

from gateway.sim.config import NodeSpec, SimClusterSpec
from gateway.sim.store import ObjectStore, now_rfc3339

Obj = dict[str, Any]
RUNTIME_ANNOTATION = "sim.podgate.io/runtime"
UNREACHABLE = "node.kubernetes.io/unreachable"
_TERMINAL = ("Succeeded", "Failed")


def namespace_object(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _ready_condition(status: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def node_object(node: NodeSpec, cluster: SimClusterSpec) -> Obj:
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    if cluster.region:
        labels["topology.kubernetes.io/region"] = cluster.region
    if cluster.zone:
        labels["topology.kubernetes.io/zone"] = cluster.zone
    labels.update(node.labels)
    allocatable = {"pods": "110", **node.allocatable}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels, "annotations": {RUNTIME_ANNOTATION: node.runtime}},
        "spec": {"taints": [dict(t) for t in node.taints]} if node.taints else {},
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [_ready_condition("True", "KubeletReady", "kubelet is posting ready status")],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node.name}],
            "nodeInfo": {
                "kubeletVersion": "v1.33.0-podgate-sim",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": f"podgate-sim://{node.runtime}",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "podgate simulator",
                "kernelVersion": "",
                "machineID": node.name,
                "systemUUID": node.name,
                "bootID": node.name,
            },
            "phase": "Running",
        },
    }


def _set_ready(node: Obj, ready: bool) -> None:
    conditions = [c for c in node["status"].get("conditions") or [] if c.get("type") != "Ready"]
    if ready:
        conditions.append(_ready_condition("True", "KubeletReady", "kubelet is posting ready status"))
    else:
        conditions.append(_ready_condition("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."))
    node["status"]["conditions"] = conditions
    taints = [t for t in node.get("spec", {}).get("taints") or [] if t.get("key") != UNREACHABLE]
    if not ready:
        taints += [
            {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": now_rfc3339()},
            {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now_rfc3339()},
        ]
    node.setdefault("spec", {})["taints"] = taints


def mark_node_lost(store: ObjectStore, name: str) -> list[str]:
    """NotReady with unreachable taints; each of its non-terminal pods Failed with reason NodeLost."""
    store.mutate("nodes", "", name, lambda n: _set_ready(n, False))
    pods, _ = store.list("pods", None, field_selector=f"spec.nodeName={name}")
    lost = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            continue
        meta = pod["metadata"]
        message = f"Node {name} which was running pod {meta['name']} is unresponsive"
        store.mutate("pods", meta["namespace"], meta["name"], functools.partial(_pod_lost, message=message))
        lost.append(f"{meta['namespace']}/{meta['name']}")
    return lost


def _pod_lost(pod: Obj, message: str) -> None:
    status = pod.setdefault("status", {})
    status.update(phase="Failed", reason="NodeLost", message=message)
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
    conditions.append({"type": "Ready", "status": "False", "reason": "NodeLost", "lastTransitionTime": now_rfc3339()})
    status["conditions"] = conditions
    for group in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(group) or []:
            state = cs.get("state") or {}
            if "terminated" not in state:
                cs["state"] = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "NodeLost",
                        "message": message,
                        "finishedAt": now_rfc3339(),
                    }
                }
                cs["ready"] = False


def mark_node_ready(store: ObjectStore, name: str) -> None:
    store.mutate("nodes", "", name, lambda n: _set_ready(n, True))
