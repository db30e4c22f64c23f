"""Hard filters: each says why a cluster cannot take a request, as a verdict and a human reason.

Permanent mismatches (REJECTED) are checked before transient ones (NO_CAPACITY), so a request never
waits for a cluster that could not take it even once it is back or has room.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain import ClusterHealth, ClusterSnapshot, PlacementSpec, TaintEffect, Verdict
from gateway.placement.node_fit import Fit, NodeFit, PodNeeds
from gateway.placement.scoring import PlacementPolicy
from gateway.placement.selectors import explain_mismatch
from gateway.placement.summary import first_fit
from gateway.placement.taints import tolerated


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request read once for all clusters."""

    spec: PlacementSpec
    namespace: str
    needs: PodNeeds


@dataclass(frozen=True, slots=True)
class Rejection:
    verdict: Verdict
    constraint: str  # short name of the failing filter, used to summarise many clusters
    reason: str


def _names(s: ClusterSnapshot, p: Prepared) -> str:
    if p.spec.clusters and s.spec.name not in p.spec.clusters:
        return f"not among the requested clusters ({', '.join(sorted(p.spec.clusters))})"
    return ""


def _region(s: ClusterSnapshot, p: Prepared) -> str:
    if p.spec.regions and s.spec.region not in p.spec.regions:
        allowed = ", ".join(sorted(p.spec.regions))
        return f"region {s.spec.region} is outside the allowed regions ({allowed}); data residency is never relaxed"
    return ""


def _selector(s: ClusterSnapshot, p: Prepared) -> str:
    mismatch = explain_mismatch(p.spec.selector, s.spec.labels) if p.spec.selector else ""
    return f"cluster selector: {mismatch}" if mismatch else ""


def _taints(s: ClusterSnapshot, p: Prepared) -> str:
    for t in s.spec.taints:
        if t.effect is TaintEffect.NO_SELECT and not tolerated(
            p.spec.tolerations, key=t.key, value=t.value, effect=t.effect
        ):
            return f"taint {t} is not tolerated"
    return ""


def _namespace(s: ClusterSnapshot, p: Prepared) -> str:
    allowed = s.spec.allowed_namespaces or frozenset({"default"})
    if p.namespace not in allowed and "*" not in allowed:
        return f"namespace {p.namespace} is not allowed here (allowed: {', '.join(sorted(allowed))})"
    return ""


def _health(s: ClusterSnapshot, p: Prepared) -> str:
    if s.health is ClusterHealth.UNREACHABLE:
        return "cluster is unreachable"
    if s.health is ClusterHealth.UNAUTHORIZED:
        return "cluster refuses the gateway's credentials (unauthorized)"
    return ""


def _cordoned(s: ClusterSnapshot, p: Prepared) -> str:
    if s.cordoned:
        return f"cluster is cordoned{': ' + s.cordon_reason if s.cordon_reason else ''}"
    return ""


def _concurrency(s: ClusterSnapshot, p: Prepared) -> str:
    limit = s.spec.max_concurrent_pods
    if limit and s.running_pods >= limit:
        return f"at its concurrency limit ({s.running_pods} of {limit} gateway pods running)"
    return ""


Check = Callable[[ClusterSnapshot, Prepared], str]
PERMANENT: tuple[tuple[str, Check], ...] = (
    ("cluster", _names),
    ("region", _region),
    ("selector", _selector),
    ("taint", _taints),
    ("namespace", _namespace),
)
UNAVAILABLE: tuple[tuple[str, Check], ...] = (("cordoned", _cordoned), ("health", _health))


def evaluate(s: ClusterSnapshot, p: Prepared, policy: PlacementPolicy) -> tuple[Rejection | None, NodeFit | None]:
    """The first failing filter (None when the cluster is eligible) and the node fit when it was computed."""
    for constraint, check in PERMANENT:
        if reason := check(s, p):
            return Rejection(Verdict.REJECTED, constraint, reason), None
    fit = first_fit(p.needs, s.nodes)
    if fit.fit is Fit.NEVER:
        return Rejection(Verdict.REJECTED, "resources", fit.reason), fit
    unavailable = Verdict.NO_CAPACITY if policy.wait_on_unavailable else Verdict.REJECTED
    for constraint, check in UNAVAILABLE:
        if reason := check(s, p):
            return Rejection(unavailable, constraint, reason), fit
    if reason := _concurrency(s, p):
        return Rejection(Verdict.NO_CAPACITY, "concurrency", reason), fit
    if fit.fit is Fit.LATER:
        return Rejection(Verdict.NO_CAPACITY, "resources", fit.reason), fit
    return None, fit
