"""Scoring among eligible clusters: preferences, free capacity, cluster weight, stability, soft taints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.domain import ClusterSnapshot, ClusterSpec, NodeState, Preference, Taint, TaintEffect, Toleration
from gateway.placement.node_fit import PodNeeds
from gateway.placement.selectors import matches
from gateway.placement.summary import Totals, summary_of
from gateway.placement.taints import tolerated

STRATEGIES = ("least-loaded", "bin-packing")


@dataclass(frozen=True, kw_only=True)
class PlacementPolicy:
    """How to rank eligible clusters. Points: preference weights count as is (1..100 each)."""

    strategy: str = "least-loaded"  # or "bin-packing": fill the busiest cluster that still fits
    capacity_points: float = 100.0  # the capacity term at its best
    weight_factor: float = 0.1  # cluster weight 100 (default) gives 10 points, 1000 gives 100
    stability_points: float = 20.0  # for the cluster the request was on before
    prefer_no_select_penalty: float = 50.0  # per untolerated PreferNoSelect taint
    wait_on_unavailable: bool = True  # cordoned/unreachable/unauthorized: NO_CAPACITY (wait) or REJECTED

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"placement strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")


@dataclass(frozen=True, slots=True)
class Score:
    preferences: float
    capacity: float
    weight: float
    stability: float
    penalty: float
    matched_preferences: int
    total_preferences: int
    strategy: str
    soft_taints: tuple[str, ...]

    @property
    def total(self) -> float:
        return total_of(self.preferences, self.capacity, self.weight, self.stability, self.penalty)

    def describe(self) -> str:
        terms = [f"free capacity {self.capacity:g} ({self.strategy})", f"weight {self.weight:g}"]
        if self.total_preferences:
            matched = f"{self.matched_preferences} of {self.total_preferences} matched"
            terms.insert(0, f"preferences {self.preferences:g} ({matched})")
        if self.stability:
            terms.append(f"stability {self.stability:g} (previous cluster)")
        text = f"score {self.total:g} = " + " + ".join(terms)
        if self.penalty:
            text += f" - {self.penalty:g} (untolerated {', '.join(self.soft_taints)})"
        return text


def total_of(preferences: float, capacity: float, weight: float, stability: float, penalty: float) -> float:
    """A score's total from its terms: one expression, so every path that scores adds up alike."""
    return round(preferences + capacity + weight + stability - penalty, 2)


def free_fraction_after(needs: PodNeeds, nodes: Sequence[NodeState]) -> float:
    """Mean share of the cluster left free once the pod is placed, over cpu, memory and (if asked) GPUs.

    Only ready, schedulable nodes count. Reads the totals of the nodes' summary (computed once per node
    set): this runs for every eligible cluster of every placement.
    """
    return free_fraction(needs, summary_of(nodes).totals)


def free_fraction(needs: PodNeeds, t: Totals) -> float:
    triples = [(t.cpu, t.cpu_used, needs.cpu_millis), (t.memory, t.memory_used, needs.memory_bytes)]
    if needs.gpus:
        triples.append((t.gpus, t.gpus_used, needs.gpus))
    shares = [max(0, total - used - wanted) / total for total, used, wanted in triples if total > 0]
    return sum(shares) / len(shares) if shares else 0.0


def capacity_term(needs: PodNeeds, t: Totals, policy: PlacementPolicy) -> float:
    """The capacity points: free share after placing (least-loaded) or its complement (bin-packing)."""
    free = free_fraction(needs, t)
    capacity = free if policy.strategy == "least-loaded" else 1.0 - free
    return round(capacity * policy.capacity_points, 2)


def weight_term(spec: ClusterSpec, policy: PlacementPolicy) -> float:
    return round(spec.weight * policy.weight_factor, 2)


def matched_preferences(preferences: Sequence[Preference], labels: Mapping[str, str]) -> list[Preference]:
    return [p for p in preferences if matches(p.selector, labels)]


def soft_taints(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> tuple[str, ...]:
    """The PreferNoSelect taints the request does not tolerate: each costs a penalty."""
    return tuple(
        str(t)
        for t in taints
        if t.effect is TaintEffect.PREFER_NO_SELECT
        and not tolerated(tolerations, key=t.key, value=t.value, effect=t.effect)
    )


def score_cluster(
    snapshot: ClusterSnapshot,
    needs: PodNeeds,
    *,
    preferences: Sequence[Preference],
    tolerations: Sequence[Toleration],
    policy: PlacementPolicy,
    previous: str,
) -> Score:
    spec = snapshot.spec
    matched = matched_preferences(preferences, spec.labels)
    soft = soft_taints(snapshot.effective_taints, tolerations)
    return Score(
        preferences=float(sum(p.weight for p in matched)),
        capacity=capacity_term(needs, summary_of(snapshot.nodes).totals, policy),
        weight=weight_term(spec, policy),
        stability=policy.stability_points if previous and previous == spec.name else 0.0,
        penalty=policy.prefer_no_select_penalty * len(soft),
        matched_preferences=len(matched),
        total_preferences=len(preferences),
        strategy=policy.strategy,
        soft_taints=soft,
    )
