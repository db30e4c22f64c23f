"""Would a pod schedule on a node: requests, nodeSelector, required node affinity and taints.

`pod_needs` reads a Pod manifest once into a `PodNeeds` (`request_needs`: once per request, however many
layers ask); `fit_node` and `fit_nodes` then answer quickly for many nodes. A pod that does not fit either never can on that node (labels, taints,
allocatable too small) or could once capacity frees (requests exceed what is free now).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from gateway.domain import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    MANIFEST_FIELD,
    NodeState,
    PodRequest,
    Selector,
    Toleration,
)
from gateway.errors import FieldViolation, InvalidArgument
from gateway.placement.quantity import format_bytes, format_millis, parse_quantity, to_millis, to_units
from gateway.placement.selectors import explain_mismatch, from_parts, matches
from gateway.placement.taints import UNSCHEDULABLE_TAINT_KEY, tolerated

RESOURCES = ("cpu", "memory", GPU_RESOURCE)
HARD_NODE_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_AFFINITY_PATH = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
_MAX_NODES_IN_REASON = 3


class Fit(enum.IntEnum):
    """Ordered best first, so the best of several nodes is `min`."""

    FITS = 0
    LATER = 1  # fits once capacity frees (or the node becomes ready/schedulable again)
    NEVER = 2


@dataclass(frozen=True, slots=True)
class NodeFit:
    fit: Fit
    reason: str
    node: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeTerm:
    """One nodeSelectorTerm: label requirements and metadata.name field requirements, ANDed."""

    labels: Selector
    fields: Selector


@dataclass(frozen=True, kw_only=True, slots=True)
class PodNeeds:
    """What a pod asks of a node, read once from its manifest."""

    cpu_millis: int = 0
    memory_bytes: int = 0
    gpus: int = 0
    node_selector: Mapping[str, str] | None = None
    affinity: tuple[NodeTerm, ...] | None = None  # None: no required node affinity
    tolerations: tuple[Toleration, ...] = ()

    @property
    def gpu_type(self) -> str:
        """The GPU type the pod selects by nodeSelector, when it does."""
        return (self.node_selector or {}).get(GPU_PRODUCT_LABEL, "")

    def describe(self) -> str:
        parts = [f"cpu {format_millis(self.cpu_millis)}", f"memory {format_bytes(self.memory_bytes)}"]
        if self.gpus:
            parts.append(f"{self.gpus} {self.gpu_type or 'GPU'}")
        return ", ".join(parts)


# --- reading the manifest -----------------------------------------------------------------


def _parse(raw: Any, field: str) -> Fraction:
    try:
        value = parse_quantity(raw)
    except ValueError as e:
        raise _invalid(field, str(e)) from None
    if value < 0:
        raise _invalid(field, f"must not be negative, got {_shown(raw)}")
    return value


def _shown(raw: Any) -> str:
    """A value echoed in an error, clipped: the input may be a megabyte of digits."""
    text = str(raw)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _container_requests(container: Mapping[str, Any], path: str) -> dict[str, Fraction]:
    """Requests per resource; a resource with only a limit requests its limit (API server defaulting)."""
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise _invalid(f"{path}.resources", "must be an object with requests and limits")
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for key, value in (("requests", requests), ("limits", limits)):
        if not isinstance(value, Mapping):
            raise _invalid(f"{path}.resources.{key}", "must be an object of quantities, e.g. {cpu: 500m}")
    out: dict[str, Fraction] = {}
    for name in RESOURCES:
        where, raw = ("requests", requests[name]) if name in requests else ("limits", limits.get(name))
        if raw is not None:
            out[name] = _parse(raw, f"{path}.resources.{where}[{name}]")
    _check_gpus(requests, limits, f"{path}.resources")
    return out


def _check_gpus(requests: Mapping[str, Any], limits: Mapping[str, Any], path: str) -> None:
    """GPUs are an extended resource, which the API server's ValidateResourceRequirements keeps whole and
    not overcommittable: an integer, and a request only with an equal limit."""
    parsed = {}
    for where, values in (("requests", requests), ("limits", limits)):
        if values.get(GPU_RESOURCE) is not None:
            parsed[where] = _parse(values[GPU_RESOURCE], f"{path}.{where}[{GPU_RESOURCE}]")
            if parsed[where].denominator != 1:
                raise _invalid(f"{path}.{where}[{GPU_RESOURCE}]", f"must be an integer, got {_shown(values[GPU_RESOURCE])}")
    if "requests" in parsed and "limits" not in parsed:
        raise _invalid(f"{path}.limits[{GPU_RESOURCE}]", "required with a GPU request: GPUs are not overcommittable")
    if "requests" in parsed and parsed["requests"] != parsed["limits"]:
        raise _invalid(f"{path}.requests[{GPU_RESOURCE}]", f"must equal the {GPU_RESOURCE} limit")


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {description}", [FieldViolation(field, description)])


# Sums and maxima over {resource: quantity} where a missing resource is zero and none is negative (`_parse`
# refuses those), so a missing one is left out rather than added as Fraction(0): Fraction arithmetic is
# ~1-2 us an operation, and most pods have one container (nothing to add then).
_ZERO = Fraction(0)


def _add(a: Mapping[str, Fraction], b: Mapping[str, Fraction]) -> dict[str, Fraction]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + v if k in out else v
    return out


def _max(a: Mapping[str, Fraction], b: Mapping[str, Fraction]) -> dict[str, Fraction]:
    out = dict(a)
    for k, v in b.items():
        if k not in out or v > out[k]:
            out[k] = v
    return out


def effective_requests(spec: Mapping[str, Any], field: str = MANIFEST_FIELD) -> dict[str, Fraction]:
    """The scheduler's view: max(app containers + sidecars, peak during init) + overhead.

    Init containers run one at a time, each beside the restartable (sidecar) init containers
    started before it; sidecars keep running beside the app containers.
    """
    app: dict[str, Fraction] = {}
    for i, c in enumerate(spec.get("containers") or ()):
        app = _add(app, _container_requests(c, f"{field}.spec.containers[{i}]"))
    sidecars: dict[str, Fraction] = {}
    peak: dict[str, Fraction] = {}
    for i, c in enumerate(spec.get("initContainers") or ()):
        requests = _container_requests(c, f"{field}.spec.initContainers[{i}]")
        if c.get("restartPolicy") == "Always":
            sidecars = _add(sidecars, requests)
            peak = _max(peak, sidecars)
        else:
            peak = _max(peak, _add(sidecars, requests))
    total = _max(_add(app, sidecars), peak)
    overhead = spec.get("overhead") or {}
    overhead = {k: _parse(overhead[k], f"{field}.spec.overhead[{k}]") for k in RESOURCES if k in overhead}
    total = _add(total, overhead)
    return {k: total.get(k, _ZERO) for k in RESOURCES}


def _node_terms(spec: Mapping[str, Any], field: str) -> tuple[NodeTerm, ...] | None:
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return None
    terms = []
    for i, term in enumerate(required.get("nodeSelectorTerms") or ()):
        path = f"{field}.{_AFFINITY_PATH}[{i}]"
        labels = from_parts(match_expressions=term.get("matchExpressions") or (), field=f"{path}.matchExpressions")
        fields = term.get("matchFields") or ()
        for j, f in enumerate(fields):
            if f.get("key") != "metadata.name":
                raise _invalid(f"{path}.matchFields[{j}].key", f"only metadata.name is supported, got {f.get('key')!r}")
        terms.append(NodeTerm(labels=labels, fields=from_parts(match_expressions=fields, field=f"{path}.matchFields")))
    return tuple(terms)


def _tolerations(spec: Mapping[str, Any]) -> tuple[Toleration, ...]:
    return tuple(
        Toleration(
            key=t.get("key") or "",
            operator=t.get("operator") or "Equal",
            value=t.get("value") or "",
            effect=t.get("effect") or "",
        )
        for t in spec.get("tolerations") or ()
    )


def pod_needs(pod: Mapping[str, Any], *, field: str = MANIFEST_FIELD) -> PodNeeds:
    """Read requests, nodeSelector, required node affinity and tolerations; InvalidArgument on bad values."""
    spec = pod.get("spec") or {}
    requests = effective_requests(spec, field)
    node_selector = spec.get("nodeSelector") or None
    if node_selector is not None and not all(isinstance(v, str) for v in node_selector.values()):
        raise _invalid(f"{field}.spec.nodeSelector", "values must be strings")
    return PodNeeds(
        cpu_millis=to_millis(requests["cpu"]),
        memory_bytes=to_units(requests["memory"]),
        gpus=to_units(requests[GPU_RESOURCE]),
        node_selector=node_selector,
        affinity=_node_terms(spec, field),
        tolerations=_tolerations(spec),
    )


def request_needs(request: PodRequest) -> PodNeeds:
    """`pod_needs(request.pod)`, read once for the request and kept with it (`PodRequest.derived`): the
    checks, the tenant's caps and quotas, the placement at acceptance and the runner's all ask for it."""
    return request.derived(pod_needs)


# --- one node -----------------------------------------------------------------------------


def _node_selector_mismatch(selector: Mapping[str, str], labels: Mapping[str, str]) -> str:
    for key, wanted in selector.items():
        have = labels.get(key)
        if have == wanted:
            continue
        if key == GPU_PRODUCT_LABEL:
            found = f"GPU type {have}" if have else "no GPU type label"
            return f"node has {found}, the pod selects GPU type {wanted}"
        found = f"{key}={have}" if have is not None else f"no label {key}"
        return f"nodeSelector {key}={wanted} does not match (node has {found})"
    return ""


def _affinity_mismatch(terms: Sequence[NodeTerm], node: NodeState) -> str:
    fields = {"metadata.name": node.name}
    for term in terms:
        empty = not (term.labels.requirements or term.fields.requirements)  # an empty term matches no node
        if not empty and matches(term.labels, node.labels) and matches(term.fields, fields):
            return ""
    if not terms:
        return "required node affinity has no nodeSelectorTerms, so no node matches"
    first = terms[0]
    detail = explain_mismatch(first.labels, node.labels) or explain_mismatch(first.fields, fields) or "empty term"
    many = f"none of {len(terms)} nodeSelectorTerms match (first: {detail})" if len(terms) > 1 else detail
    return f"required node affinity: {many}"


def _untolerated_taint(needs: PodNeeds, node: NodeState) -> str:
    for taint in node.taints:
        if taint.effect in HARD_NODE_EFFECTS and not tolerated(
            needs.tolerations, key=taint.key, value=taint.value, effect=taint.effect
        ):
            value = f"={taint.value}" if taint.value else ""
            return f"taint {taint.key}{value}:{taint.effect} is not tolerated"
    return ""


def _shortfall(needs: PodNeeds, node: NodeState, *, free: bool) -> str:
    """The first resource the node lacks, either allocatable (free=False) or free now (free=True)."""
    checks = (
        (needs.gpus, node.gpus_free if free else node.gpus, node.gpus, GPU_RESOURCE, str),
        (needs.cpu_millis, node.cpu_millis_free if free else node.cpu_millis, node.cpu_millis, "cpu", format_millis),
        (
            needs.memory_bytes,
            node.memory_bytes_free if free else node.memory_bytes,
            node.memory_bytes,
            "memory",
            format_bytes,
        ),
    )
    for wanted, available, allocatable, name, fmt in checks:
        if wanted > available:
            if free:
                return f"needs {fmt(wanted)} {name}, {fmt(available)} of {fmt(allocatable)} free now"
            return f"needs {fmt(wanted)} {name}, node has {fmt(allocatable)} allocatable"
    return ""


def fit_node(needs: PodNeeds, node: NodeState) -> NodeFit:
    """Static mismatches first (NEVER), then transient ones (LATER)."""
    never = (
        (needs.node_selector and _node_selector_mismatch(needs.node_selector, node.labels))
        or (needs.affinity is not None and _affinity_mismatch(needs.affinity, node))
        or _untolerated_taint(needs, node)
        or _shortfall(needs, node, free=False)
    )
    if never:
        return NodeFit(Fit.NEVER, never, node.name)
    if not node.ready:
        return NodeFit(Fit.LATER, "node is not ready", node.name)
    if not node.schedulable and not tolerated(
        needs.tolerations, key=UNSCHEDULABLE_TAINT_KEY, value="", effect="NoSchedule"
    ):  # the NodeUnschedulable filter: a pod tolerating the unschedulable taint may still land
        return NodeFit(Fit.LATER, "node is cordoned (unschedulable)", node.name)
    later = _shortfall(needs, node, free=True)
    if later:
        return NodeFit(Fit.LATER, later, node.name)
    return NodeFit(Fit.FITS, "fits", node.name)


# --- a cluster's nodes --------------------------------------------------------------------


def _list_nodes(fits: Sequence[NodeFit]) -> str:
    shown = "; ".join(f"{f.node}: {f.reason}" for f in fits[:_MAX_NODES_IN_REASON])
    more = len(fits) - _MAX_NODES_IN_REASON
    return f"{shown}; and {more} more node(s)" if more > 0 else shown


def fit_nodes(needs: PodNeeds, nodes: Sequence[NodeState]) -> NodeFit:
    """The best verdict over a cluster's nodes, with the nodes' reasons when none fits now."""
    if not nodes:
        return NodeFit(Fit.LATER, "no node capacity known yet (no nodes reported)")
    fits: list[NodeFit] = []
    for node in nodes:
        fit = fit_node(needs, node)
        if fit.fit is Fit.FITS:
            return NodeFit(Fit.FITS, f"fits on node {node.name}", node.name)
        fits.append(fit)
    later = [f for f in fits if f.fit is Fit.LATER]
    if later:
        return NodeFit(Fit.LATER, f"no node has room now: {_list_nodes(later)}", later[0].node)
    return NodeFit(Fit.NEVER, f"no node can ever run the pod ({needs.describe()}): {_list_nodes(fits)}")
