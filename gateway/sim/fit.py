"""Whether a pod fits a node, and why not, as kube-scheduler's default filters decide (pure; no I/O).

Works on Kubernetes objects as plain dicts. Filters run in kube-scheduler's order (NodeUnschedulable,
TaintToleration, NodeAffinity, NodeResourcesFit) and a node stops at its first failing filter, so the
FailedScheduling histogram counts the same reasons the real scheduler would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.sim.quantity import QuantityError, to_int, to_millis
from gateway.sim.selectors import compare

Obj = Mapping[str, Any]
Resources = dict[str, int]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
_FIRST_RESOURCES = ("pods", "cpu", "memory", "ephemeral-storage")


@dataclass(frozen=True)
class NodeFailure:
    """Why one node was rejected. `resolvable` is False when preemption could not help (taints, affinity)."""

    reasons: tuple[str, ...]
    resolvable: bool


@dataclass(frozen=True)
class Decision:
    """The node chosen for a pod, or the FailedScheduling message explaining why there is none."""

    node: str | None
    message: str = ""


def _quantity(resource: str, value: Any) -> int:
    return to_millis(value) if resource == "cpu" else to_int(value)


def container_requests(container: Obj) -> Resources:
    """A container's requests; a resource with only a limit requests its limit (API server defaulting)."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: _quantity(name, value) for name, value in merged.items()}


def _plus(a: Mapping[str, int], b: Mapping[str, int]) -> Resources:
    return {name: a.get(name, 0) + b.get(name, 0) for name in {*a, *b}}


def _peak(a: Mapping[str, int], b: Mapping[str, int]) -> Resources:
    return {name: max(a.get(name, 0), b.get(name, 0)) for name in {*a, *b}}


def pod_requests(spec: Obj) -> Resources:
    """Effective pod request as component-helpers' PodRequests: max(containers + sidecars, the peak while
    init containers run) + overhead, plus one pod slot. A sidecar (an init container with restartPolicy
    Always) keeps running beside every later init container and the app containers."""
    total: Resources = {}
    for container in spec.get("containers") or []:
        total = _plus(total, container_requests(container))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for container in spec.get("initContainers") or []:
        requests = container_requests(container)
        if container.get("restartPolicy") == "Always":
            total = _plus(total, requests)
            sidecars = _plus(sidecars, requests)
            init_peak = _peak(init_peak, sidecars)
        else:
            init_peak = _peak(init_peak, _plus(sidecars, requests))
    total = _peak(total, init_peak)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + _quantity(name, value)
    total["pods"] = 1
    return total


def node_allocatable(node: Obj) -> Resources:
    status = node.get("status") or {}
    raw = status.get("allocatable") or status.get("capacity") or {}
    return {name: _quantity(name, value) for name, value in raw.items()}


def add_usage(usage: Resources, requests: Mapping[str, int], sign: int = 1) -> None:
    for name, amount in requests.items():
        usage[name] = usage.get(name, 0) + sign * amount


def usage_by_node(pods: Iterable[Obj]) -> dict[str, Resources]:
    """Requests of the non-terminated pods bound to each node."""
    usage: dict[str, Resources] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            add_usage(usage.setdefault(node, {}), pod_requests(pod["spec"]))
    return usage


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' ToleratesTaint: empty effect/key with Exists are wildcards."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taints(node: Obj, tolerations: Iterable[Obj], effects: frozenset[str]) -> list[Obj]:
    tolerations = list(tolerations)
    taints = (node.get("spec") or {}).get("taints") or []
    return [t for t in taints if t.get("effect") in effects and not any(tolerates(tol, t) for tol in tolerations)]


def _expression_matches(expression: Obj, value: str | None) -> bool:
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        return compare(value, operator.lower(), str(values[0]))
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    """Expressions in a term are ANDed; a term with none matches nothing, as in Kubernetes."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": (node.get("metadata") or {}).get("name")}
    expressions = term.get("matchExpressions") or []
    field_expressions = term.get("matchFields") or []
    if not expressions and not field_expressions:
        return False
    return all(_expression_matches(e, labels.get(e.get("key"))) for e in expressions) and all(
        _expression_matches(e, fields.get(e.get("key"))) for e in field_expressions
    )


def matches_node_selector(spec: Obj, node: Obj) -> bool:
    """nodeSelector AND requiredDuringSchedulingIgnoredDuringExecution (its terms ORed)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def insufficient(requests: Mapping[str, int], allocatable: Mapping[str, int], used: Mapping[str, int]) -> list[str]:
    """NodeResourcesFit's reasons, in its order: pods, cpu, memory, ephemeral-storage, then extended resources."""
    names = [n for n in _FIRST_RESOURCES if n in requests] + sorted(n for n in requests if n not in _FIRST_RESOURCES)
    reasons = []
    for name in names:
        wanted = requests[name]
        if wanted > 0 and used.get(name, 0) + wanted > allocatable.get(name, 0):
            reasons.append("Too many pods" if name == "pods" else f"Insufficient {name}")
    return reasons


def node_failure(
    spec: Obj,
    requests: Mapping[str, int],
    node: Obj,
    used: Mapping[str, int],
    allocatable: Mapping[str, int] | None = None,
) -> NodeFailure | None:
    """The first failing filter's reasons for this node, or None when the pod fits."""
    tolerations = spec.get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not any(
        tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tolerations
    ):
        return NodeFailure(("node(s) were unschedulable",), resolvable=False)
    taints = untolerated_taints(node, tolerations, frozenset({"NoSchedule", "NoExecute"}))
    if taints:
        taint = taints[0]
        reason = f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
        return NodeFailure((reason,), resolvable=False)
    if not matches_node_selector(spec, node):
        return NodeFailure(("node(s) didn't match Pod's node affinity/selector",), resolvable=False)
    reasons = insufficient(requests, node_allocatable(node) if allocatable is None else allocatable, used)
    return NodeFailure(tuple(reasons), resolvable=True) if reasons else None


def _histogram(counts: Mapping[str, int]) -> str:
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def fit_error_message(total: int, failures: Iterable[NodeFailure]) -> str:
    """kube-scheduler's FitError text, preemption part included (this simulator never preempts)."""
    if total == 0:
        return "no nodes available to schedule pods"
    reasons: dict[str, int] = {}
    preemption: dict[str, int] = {}
    for failure in failures:
        for reason in failure.reasons:
            reasons[reason] = reasons.get(reason, 0) + 1
        verdict = (
            "No preemption victims found for incoming pod"
            if failure.resolvable
            else "Preemption is not helpful for scheduling"
        )
        preemption[verdict] = preemption.get(verdict, 0) + 1
    head = f"0/{total} nodes are available: {_histogram(reasons)}."
    return f"{head} preemption: 0/{total} nodes are available: {_histogram(preemption)}.."


def preferred_weight(spec: Obj, node: Obj) -> int:
    """Sum of the weights of the preferredDuringScheduling node-affinity terms this node matches."""
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    )
    return sum(int(p.get("weight", 0)) for p in preferred or [] if _term_matches(p.get("preference") or {}, node))


def _rank(
    spec: Obj, requests: Mapping[str, int], node: Obj, used: Mapping[str, int], allocatable: Mapping[str, int]
) -> tuple[int, int, float, str]:
    """Lower is better: fewer untolerated PreferNoSchedule taints, then more preferred-affinity weight, then
    the least allocated node, then the name (a simplification of the default score plugins' weighted sum)."""
    soft = len(untolerated_taints(node, spec.get("tolerations") or [], frozenset({"PreferNoSchedule"})))
    free = 0.0
    for name in ("cpu", "memory"):
        capacity = allocatable.get(name, 0)
        if capacity:
            free += (capacity - used.get(name, 0) - requests.get(name, 0)) / capacity
    return (soft, -preferred_weight(spec, node), -free, (node.get("metadata") or {}).get("name", ""))


def choose_node(
    pod: Obj,
    nodes: Iterable[Obj],
    usage: Mapping[str, Mapping[str, int]],
    allocatable: Mapping[str, Mapping[str, int]] | None = None,
) -> Decision:
    """Filter then score, like one kube-scheduler cycle; bad quantities make the pod unschedulable, not a crash.
    `allocatable` (per node name) saves parsing each node's quantities again; missing nodes are parsed."""
    spec = pod.get("spec") or {}
    nodes = list(nodes)
    try:
        requests = pod_requests(spec)
    except QuantityError as e:
        return Decision(None, f"0/{len(nodes)} nodes are available: invalid resource request: {e}.")
    fitting: list[Obj] = []
    failures: list[NodeFailure] = []
    parsed = dict(allocatable or {})
    for node in nodes:
        name = (node.get("metadata") or {}).get("name", "")
        if name not in parsed:
            parsed[name] = node_allocatable(node)
        failure = node_failure(spec, requests, node, usage.get(name, {}), parsed[name])
        if failure is None:
            fitting.append(node)
        else:
            failures.append(failure)
    if not fitting:
        return Decision(None, fit_error_message(len(nodes), failures))
    best = min(
        fitting,
        key=lambda n: _rank(spec, requests, n, usage.get(n["metadata"]["name"], {}), parsed[n["metadata"]["name"]]),
    )
    return Decision(best["metadata"]["name"])
