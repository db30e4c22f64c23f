"""Node fit: (pod spec, node, pods already bound to it) -> whether kube-scheduler's filters pass.

Kubernetes' rules (pkg/scheduler/framework/plugins, component-helpers/resource):
- NodeUnschedulable: a node with spec.unschedulable only takes pods tolerating
  node.kubernetes.io/unschedulable:NoSchedule.
- TaintToleration: every NoSchedule and NoExecute taint must be tolerated (taints.py's rule).
- NodeAffinity: every nodeSelector entry must equal the node's label; required node affinity's
  nodeSelectorTerms are ORed, a term's matchExpressions/matchFields ANDed, and an empty term matches
  nothing; matchFields know metadata.name.
- NodeResourcesFit: the pod's request (PodRequests: max(app containers + sidecars, the peak while init
  containers run, each beside the sidecars started before it) + overhead, a resource with only a limit
  requesting its limit) must fit into allocatable minus the requests of the pods bound there; a resource
  the pod requests 0 of is not checked. CPU compares in millicores (MilliValue, rounded up), memory and
  extended resources in units (Value, rounded up).
Both implementations check cpu, memory and nvidia.com/gpu; rows stay within those (and a pod slot).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

Obj = dict[str, Any]

NODE: Obj = {
    "metadata": {"name": "n1", "labels": {"zone": "a", "cores": "16", "kubernetes.io/hostname": "n1"}},
    "spec": {},
    "status": {
        "allocatable": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def node(*, taints: list[Obj] | None = None, unschedulable: bool = False, **allocatable: str) -> Obj:
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    status = {**NODE["status"], "allocatable": {**NODE["status"]["allocatable"], **allocatable}}
    return {**NODE, "spec": spec, "status": status}


def box(name: str = "main", *, restart: str = "", requests: Obj | None = None, limits: Obj | None = None) -> Obj:
    """A container with these requests/limits (restart="Always" makes an init container a sidecar)."""
    c: Obj = {"name": name, "image": "busybox", "resources": {}}
    if requests is not None:
        c["resources"]["requests"] = requests
    if limits is not None:
        c["resources"]["limits"] = limits
    if restart:
        c["restartPolicy"] = restart
    return c


def spec(*containers: Obj, init: list[Obj] | None = None, **extra: Any) -> Obj:
    out: Obj = {"containers": list(containers) or [box(requests={"cpu": "100m"})], **extra}
    if init:
        out["initContainers"] = init
    return out


def affinity(*terms: Obj) -> Obj:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def running(cpu: str = "0", memory: str = "0") -> Obj:
    """A pod bound to n1 and running, requesting this much."""
    return {
        "metadata": {"name": f"running-{cpu}-{memory}", "uid": f"uid-{cpu}-{memory}"},
        "spec": {"nodeName": "n1", "containers": [box(requests={"cpu": cpu, "memory": memory})]},
        "status": {"phase": "Running"},
    }


UNSCHEDULABLE_TOLERATION = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}

NODE_FIT: list[tuple[str, Obj, Obj, list[Obj], bool]] = [
    ("small pod", spec(), node(), [], True),
    ("cpu exactly allocatable", spec(box(requests={"cpu": "4"})), node(), [], True),
    ("cpu 1m over", spec(box(requests={"cpu": "4001m"})), node(), [], False),
    ("cpu as JSON number text", spec(box(requests={"cpu": Decimal("3.9")})), node(cpu="3900m"), [], True),
    ("0.1 cpu is 100m, not 101m", spec(box(requests={"cpu": Decimal("0.1")})), node(cpu="100m"), [], True),
    ("0.1n cpu rounds up to 1m", spec(box(requests={"cpu": "0.1n"})), node(cpu="1m"), [], True),
    ("memory exactly allocatable", spec(box(requests={"memory": "8Gi"})), node(), [], True),
    ("memory one byte over", spec(box(requests={"memory": "8589934593"})), node(), [], False),
    ("fractional byte rounds up", spec(box(requests={"memory": "8589934592.5"})), node(), [], False),
    ("one gpu", spec(box(limits={"nvidia.com/gpu": "1"})), node(), [], True),
    ("two gpus", spec(box(limits={"nvidia.com/gpu": "2"})), node(), [], False),
    ("limit only requests its limit", spec(box(limits={"cpu": "5"})), node(), [], False),
    ("request below limit", spec(box(requests={"cpu": "1"}, limits={"cpu": "5"})), node(), [], True),
    ("containers add up", spec(box("a", requests={"cpu": "2"}), box("b", requests={"cpu": "2500m"})), node(), [], False),
    (
        "init containers take the max",
        spec(box(requests={"cpu": "1"}), init=[box("i", requests={"cpu": "4"})]),
        node(),
        [],
        True,
    ),
    (
        "a sidecar runs beside the app",
        spec(box(requests={"cpu": "3500m"}), init=[box("s", restart="Always", requests={"cpu": "1"})]),
        node(),
        [],
        False,
    ),
    (
        "an init container runs beside earlier sidecars",
        spec(
            box(requests={"cpu": "1"}),
            init=[box("s", restart="Always", requests={"cpu": "1"}), box("i", requests={"cpu": "3500m"})],
        ),
        node(),
        [],
        False,
    ),
    (
        "an init container before a sidecar runs alone",
        spec(
            box(requests={"cpu": "1"}),
            init=[box("i", requests={"cpu": "3500m"}), box("s", restart="Always", requests={"cpu": "1"})],
        ),
        node(),
        [],
        True,
    ),
    ("overhead is added", spec(box(requests={"cpu": "3900m"}), overhead={"cpu": "200m"}), node(), [], False),
    ("bound pods use capacity", spec(box(requests={"cpu": "1500m"})), node(), [running(cpu="3")], False),
    ("what is left fits", spec(box(requests={"cpu": "1"})), node(), [running(cpu="3")], True),
    ("zero request on a full node", spec(box(requests={"memory": "1Mi"})), node(), [running(cpu="4")], True),
    ("nodeSelector matches", spec(nodeSelector={"zone": "a"}), node(), [], True),
    ("nodeSelector differs", spec(nodeSelector={"zone": "b"}), node(), [], False),
    ("nodeSelector label missing", spec(nodeSelector={"rack": "1"}), node(), [], False),
    (
        "affinity In",
        spec(affinity=affinity({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]})),
        node(),
        [],
        True,
    ),
    (
        "affinity Gt",
        spec(affinity=affinity({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]})),
        node(),
        [],
        True,
    ),
    (
        "affinity Lt",
        spec(affinity=affinity({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]})),
        node(),
        [],
        False,
    ),
    (
        "terms are ORed",
        spec(
            affinity=affinity(
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
            )
        ),
        node(),
        [],
        True,
    ),
    ("an empty term matches nothing", spec(affinity=affinity({})), node(), [], False),
    (
        "matchFields metadata.name",
        spec(affinity=affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})),
        node(),
        [],
        True,
    ),
    (
        "matchFields another name",
        spec(affinity=affinity({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]})),
        node(),
        [],
        False,
    ),
    ("untolerated NoSchedule taint", spec(), node(taints=[GPU_TAINT]), [], False),
    (
        "tolerated taint",
        spec(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
        node(taints=[GPU_TAINT]),
        [],
        True,
    ),
    ("untolerated NoExecute taint", spec(), node(taints=[{**GPU_TAINT, "effect": "NoExecute"}]), [], False),
    ("PreferNoSchedule only scores", spec(), node(taints=[{**GPU_TAINT, "effect": "PreferNoSchedule"}]), [], True),
    (
        "unknown toleration operator tolerates nothing",
        spec(tolerations=[{"key": "dedicated", "operator": "Foo", "value": "gpu"}]),
        node(taints=[GPU_TAINT]),
        [],
        False,
    ),
    ("cordoned node", spec(), node(unschedulable=True), [], False),
    ("cordoned node, pod tolerates it", spec(tolerations=[UNSCHEDULABLE_TOLERATION]), node(unschedulable=True), [], True),
]
