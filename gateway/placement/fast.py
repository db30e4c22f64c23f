"""Which clusters are eligible and which is best, without judging every cluster one by one.

The table of every cluster's verdict and reason (what GetPod and ExplainPlacement show) costs ~20 µs a
cluster: 21 ms among 1,000 clusters for a request shape not seen before. Choosing needs far less. A
cluster is eligible when the permanent filters pass, it is up and under its concurrency limit, and a node
fits the pod now; the eligible cluster with the best score wins. `FleetIndex` keeps, per cluster, what
does not depend on the request (updated only for the clusters whose snapshot changed since the last
placement), so that a placement

- judges the permanent filters, preferences and soft taints once per distinct *spec class* (region,
  labels, taints, namespaces), reading only the parts the request constrains;
- finds the clusters where a node fits in one pass over the fleet's free shapes for the pod's GPU type
  (the nodes' summaries' frontiers), not node by node;
- scores exactly only the clusters that can still win: each class's clusters are kept in the order of a
  bound of their score that no request can exceed (capacity when the pod asks nothing), and the search
  stops once the next bound is below the best exact score.

Everything it decides it decides by calling the filter, node fit and scoring functions the full path
calls; tests/unit/test_placement_fast.py holds the two to the same decisions on random fleets.

Pure: dictionaries in memory, with no clock and no I/O.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, ne

from gateway.domain import GPU_PRODUCT_LABEL, ClusterHealth, ClusterSnapshot, ClusterSpec, Taint
from gateway.placement.filters import PERMANENT, Prepared
from gateway.placement.node_fit import PodNeeds
from gateway.placement.scoring import (
    PlacementPolicy,
    capacity_term,
    matched_preferences,
    soft_taints,
    total_of,
    weight_term,
)
from gateway.placement.summary import ANY_GPU_TYPE, Totals, fits_now, summary_of

_DOWN = frozenset({ClusterHealth.UNREACHABLE, ClusterHealth.UNAUTHORIZED})
_SPEC_FILTERS = tuple(check for name, check in PERMANENT if name != "cluster")  # the name filter is per cluster
STATE_FIELDS = ("spec", "nodes", "health", "cordoned", "cordon_reason", "running_pods")  # all a snapshot holds
_STATE = attrgetter(*STATE_FIELDS)
# Bounds and exact totals are both rounded to 0.01 from nearly the same float sums: a bound widened by
# this much is never below the exact total it bounds.
_MARGIN = 0.02
_SCORE_ALL_UP_TO = 16  # eligible clusters scored without the bounds' search
_STALE_UP_TO = 32  # clusters changed since the flat lists of free shapes were laid out, judged one by one
# The process's index leaves a fleet this small to the full path: judging 3 clusters with the outcome memo
# takes ~65 us against ~105 us for keeping the index and ranking (bench/pod_path.py), and up to 8
# clusters the table is stored with each decision anyway (pods/explanations.py), built by the full path.
FULL_UP_TO = 8

ClassKey = tuple[str, tuple[tuple[str, str], ...], tuple[Taint, ...], frozenset[str]]


def _class_key(spec: ClusterSpec) -> ClassKey:
    """Everything of a spec that the permanent filters (but the name), preferences and soft taints read."""
    return (spec.region, tuple(sorted(spec.labels.items())), spec.taints, spec.allowed_namespaces)


def _capacity_bound(t: Totals, gpu_share: bool, policy: PlacementPolicy) -> float:
    """`capacity_term` for a pod asking nothing (with or without the GPU share): no pod's is higher."""
    pairs = [(t.cpu, t.cpu_used), (t.memory, t.memory_used)]
    if gpu_share:
        pairs.append((t.gpus, t.gpus_used))
    shares = [max(0, total - used) / total for total, used in pairs if total > 0]
    return round((sum(shares) / len(shares) if shares else 0.0) * policy.capacity_points, 2)


def exact_score(s: ClusterSnapshot, p: Prepared, policy: PlacementPolicy, previous: str) -> float:
    """The total `score_cluster` gives an eligible cluster (up and not cordoned: its taints are its spec's)."""
    spec = s.spec
    preferences, penalty = _class_terms(spec, p, policy)
    capacity = capacity_term(p.needs, summary_of(s.nodes).totals, policy)
    stability = policy.stability_points if previous and previous == spec.name else 0.0
    return total_of(preferences, capacity, weight_term(spec, policy), stability, penalty)


def _class_terms(spec: ClusterSpec, p: Prepared, policy: PlacementPolicy) -> tuple[float, float]:
    matched = matched_preferences(p.spec.preferences, spec.labels)
    penalty = policy.prefer_no_select_penalty * len(soft_taints(spec.taints, p.spec.tolerations))
    return float(sum(m.weight for m in matched)), penalty


def _judge_class(s: ClusterSnapshot, p: Prepared, policy: PlacementPolicy) -> tuple[float, float] | None:
    """None when a permanent filter rejects the class, else its preference points and soft-taint penalty."""
    if any(check(s, p) for check in _SPEC_FILTERS):
        return None
    return _class_terms(s.spec, p, policy)


@dataclass(frozen=True, slots=True)
class _Entry:
    klass: ClassKey
    available: bool  # up, not cordoned, under its concurrency limit
    shapes: dict[str | None, tuple[tuple[int, int, int], ...]]
    irregular: bool
    keys: tuple[float, float]  # capacity bound (without, with the GPU share) + weight: the search order


@dataclass(slots=True)
class _Class:
    key: ClassKey
    sample: ClusterSnapshot  # any cluster of the class answers its filters alike
    members: set[str] = field(default_factory=set)  # the available ones
    order: tuple[list[tuple[float, str]], list[tuple[float, str]]] = field(default_factory=lambda: ([], []))


@dataclass(frozen=True, slots=True)
class Ranking:
    """The eligible clusters of one placement and the best of them, with the inputs to rank them all."""

    eligible: frozenset[str]
    best: int  # its index in `snapshots`
    scores: dict[str, float]  # exact totals of the clusters scored while searching
    snapshots: tuple[ClusterSnapshot, ...]
    position: dict[str, int]
    p: Prepared
    policy: PlacementPolicy
    previous: str

    def exact_order(self) -> tuple[str, ...]:
        """Every eligible cluster, best first, as the full path orders them: by score, then by name."""
        scored = [(-self._score(n), n) for n in self.eligible]
        return tuple(n for _, n in sorted(scored))

    def _score(self, name: str) -> float:
        known = self.scores.get(name)
        if known is not None:
            return known
        return exact_score(self.snapshots[self.position[name]], self.p, self.policy, self.previous)


class FleetIndex:
    """What placement needs of every cluster that no request changes, kept between placements."""

    def __init__(
        self, *, score_all_up_to: int = _SCORE_ALL_UP_TO, stale_up_to: int = _STALE_UP_TO, full_up_to: int = 0
    ) -> None:
        self._score_all_up_to = score_all_up_to  # tests pass 0: the bounds' search for every fleet
        self._full_up_to = full_up_to  # fleets of up to this many clusters are left to the full path
        self._stale_up_to = stale_up_to  # tests pass 1: lists laid out again after almost every change
        self._policy = PlacementPolicy()
        self._states: list[tuple[object, ...]] = []
        self._entries: dict[str, _Entry] = {}
        self._position: dict[str, int] = {}  # replaced, never changed in place: rankings hold it
        self._classes: dict[ClassKey, _Class] = {}
        self._names: list[str] = []
        self._points: dict[str | None, list[tuple[int, int, int, str]]] = {}
        self._stale: set[str] = set()  # changed since the points were laid out: judged one by one
        self._irregular: set[str] = set()

    # --- keeping up with the fleet --------------------------------------------------------

    def sync(self, clusters: Sequence[ClusterSnapshot], policy: PlacementPolicy) -> bool:
        """Brings the index up to `clusters`; False when it does not serve them: two clusters of one name, or
        a fleet of up to `full_up_to` clusters (the full path is cheaper there)."""
        if len(clusters) <= self._full_up_to:
            return False
        states = list(map(_STATE, clusters))
        if states == self._states and policy == self._policy:
            return True
        if policy == self._policy and len(states) == len(self._states):
            changed = list(compress(range(len(states)), map(ne, states, self._states)))  # in C: no loop here
            if all(clusters[i].spec.name == self._names[i] for i in changed):
                for i in changed:
                    self._remove(self._names[i])
                    self._add(clusters[i], fresh=False)
                self._states = states
                return True
        names = [s.spec.name for s in clusters]
        if len(set(names)) != len(names):
            self._states = []
            return False
        self._rebuild(clusters, states, names, policy)
        return True

    def _rebuild(
        self, clusters: Sequence[ClusterSnapshot], states: list[tuple[object, ...]], names: list[str], policy: PlacementPolicy
    ) -> None:
        self._policy, self._states, self._names = policy, states, names
        self._entries, self._classes, self._irregular = {}, {}, set()
        self._position = {name: i for i, name in enumerate(names)}
        for s in clusters:
            self._add(s, fresh=True)
        self._points, self._stale = {}, set(names)
        self._compact()

    def _compact(self) -> None:
        """Lays the stale clusters' free shapes out again in the flat lists, one list per GPU type."""
        stale = self._stale
        points = {key: [point for point in kept if point[3] not in stale] for key, kept in self._points.items()}
        for name in stale:
            for gpu_type, shapes in self._entries[name].shapes.items():
                points.setdefault(gpu_type, []).extend((*shape, name) for shape in shapes)
        self._points, self._stale = points, set()

    def _add(self, s: ClusterSnapshot, *, fresh: bool) -> None:
        spec, name = s.spec, s.spec.name
        limit = spec.max_concurrent_pods
        summary = summary_of(s.nodes)
        weight = weight_term(spec, self._policy)
        entry = self._entries[name] = _Entry(
            klass=_class_key(spec),
            available=not (s.cordoned or s.health in _DOWN or (limit and s.running_pods >= limit)),
            shapes=summary.shapes,
            irregular=bool(summary.irregular),
            keys=(
                _capacity_bound(summary.totals, False, self._policy) + weight,
                _capacity_bound(summary.totals, True, self._policy) + weight,
            ),
        )
        group = self._classes.get(entry.klass)
        if group is None:
            group = self._classes[entry.klass] = _Class(entry.klass, s)
        if entry.available:
            group.members.add(name)
            for order, key in zip(group.order, entry.keys, strict=True):
                insort(order, (-key, name))
        if entry.irregular:
            self._irregular.add(name)
        if not fresh:  # its points in the flat lists are stale until the next compaction
            self._stale.add(name)
            if len(self._stale) > self._stale_up_to:
                self._compact()

    def _remove(self, name: str) -> None:
        entry = self._entries.pop(name)
        group = self._classes[entry.klass]  # classes stay until the next rebuild, members or not
        if entry.available:
            group.members.discard(name)
            for order, key in zip(group.order, entry.keys, strict=True):
                order.remove((-key, name))
        self._irregular.discard(name)

    # --- one placement --------------------------------------------------------------------

    def rank(self, p: Prepared, snapshots: tuple[ClusterSnapshot, ...], previous: str) -> Ranking | None:
        """The eligible clusters among `snapshots` (those of the last `sync`) and the best of them; None
        when no cluster is eligible."""
        passing = self._passing_classes(p)
        if not passing:
            return None
        fitting = self._fitting(p.needs, snapshots, {g.key for g, _ in passing})
        eligible: set[str] = set()
        for group, _ in passing:
            eligible |= group.members & fitting
        if p.spec.clusters:
            eligible &= p.spec.clusters
        if not eligible:
            return None
        scores = self._search(p, snapshots, previous, passing, eligible)
        best = min((-score, name) for name, score in scores.items() if name in eligible)[1]
        return Ranking(frozenset(eligible), self._position[best], scores, snapshots, self._position, p, self._policy, previous)

    def _passing_classes(self, p: Prepared) -> list[tuple[_Class, tuple[float, float]]]:
        """Each class the permanent filters let through, with its preference points and soft-taint penalty.

        Classes alike in what the request reads (no region constraint: not the region; no selector and no
        preferences: not the labels) are judged once."""
        spec = p.spec
        reads_labels = bool(spec.selector or spec.preferences)
        judged: dict[Hashable, tuple[float, float] | None] = {}
        out = []
        for group in self._classes.values():
            if not group.members:
                continue
            region, labels, taints, namespaces = group.key
            key = (region if spec.regions else None, labels if reads_labels else None, taints, namespaces)
            if key not in judged:
                judged[key] = _judge_class(group.sample, p, self._policy)
            terms = judged[key]
            if terms is not None:
                out.append((group, terms))
        return out

    def _fitting(self, needs: PodNeeds, snapshots: tuple[ClusterSnapshot, ...], passing: set[ClassKey]) -> set[str]:
        """Clusters where a node fits the pod now: every available one of the `passing` classes, maybe others."""
        selector = needs.node_selector
        simple = needs.affinity is None and (not selector or (len(selector) == 1 and GPU_PRODUCT_LABEL in selector))
        found: set[str] = set()
        if simple:
            points = self._points.get(selector[GPU_PRODUCT_LABEL] if selector else ANY_GPU_TYPE, ())
            cpu, memory, gpus = needs.cpu_millis, needs.memory_bytes, needs.gpus
            found = {n for c, m, g, n in points if cpu <= c and memory <= m and gpus <= g} - self._stale
        for n in (self._irregular | self._stale if simple else self._entries.keys()) - found:  # node by node
            entry = self._entries[n]
            if entry.available and entry.klass in passing and fits_now(needs, snapshots[self._position[n]].nodes):
                found.add(n)
        return found

    def _search(
        self,
        p: Prepared,
        snapshots: tuple[ClusterSnapshot, ...],
        previous: str,
        passing: list[tuple[_Class, tuple[float, float]]],
        eligible: set[str],
    ) -> dict[str, float]:
        """Exact scores of the eligible clusters that may be best, taken in the order of their bounds
        until the next bound is below the best score found (every eligible one when bounds do not hold)."""
        policy = self._policy

        def score(name: str) -> float:
            return exact_score(snapshots[self._position[name]], p, policy, previous)

        if len(eligible) <= self._score_all_up_to or policy.strategy != "least-loaded" or policy.capacity_points < 0:
            return {n: score(n) for n in eligible}
        scores = {previous: score(previous)} if previous in eligible else {}  # its stability bonus is unbounded here
        best = max(scores.values(), default=None)
        gpu_share = 1 if p.needs.gpus else 0
        heap = [
            (group.order[gpu_share][0][0] - preferences + penalty - _MARGIN, i, 0)
            for i, (group, (preferences, penalty)) in enumerate(passing)
            if group.order[gpu_share]
        ]
        heapq.heapify(heap)
        while heap:
            negative_bound, i, at = heapq.heappop(heap)
            if best is not None and -negative_bound < best:
                break  # every cluster left is bounded below the best: none can equal it
            group, (preferences, penalty) = passing[i]
            order = group.order[gpu_share]
            if at + 1 < len(order):
                heapq.heappush(heap, (order[at + 1][0] - preferences + penalty - _MARGIN, i, at + 1))
            name = order[at][1]
            if name in eligible and name not in scores:
                scores[name] = total = score(name)
                best = total if best is None else max(best, total)
        return scores
