"""Per-cluster node summaries, computed once per node set, so a placement does not re-read every node.

Placement runs for every request against every registered cluster. Reading each node through
`fit_node` (about 2.4 µs a node) and summing capacity for the score made 1,000 clusters of 10 nodes
cost ~22 ms. A `NodeSummary` keeps, per node set, what those reads need: the capacity totals of the
score, the largest free cpu, memory and GPUs per GPU type (a bound that rules a cluster out at once),
and each node as a flat row. `first_fit` answers exactly what `fit_nodes` answers: it scans the rows
for the first node that fits now, and hands the cluster to `fit_nodes` for its exact reasons when none
does. `fits_now` answers only whether a node fits, from the frontier of free shapes per GPU type (what
the fleet index of fast.py lays out for the whole fleet). Property tests (tests/unit/test_placement_fast.py)
hold both to `fit_nodes`' answers.

Summaries are memoised by the identity of the nodes tuple: the capacity book hands out the same tuple
until a node or a pod on it changes, so a summary is computed when a cluster's capacity changes, not
per placement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.domain import GPU_PRODUCT_LABEL, NodeState
from gateway.placement.node_fit import HARD_NODE_EFFECTS, Fit, NodeFit, PodNeeds, fit_node, fit_nodes

ANY_GPU_TYPE = "\0any"  # key of the bound over every node, whatever its GPU type
_MEMO_LIMIT = 20_000  # node sets remembered; past it the memo starts afresh


@dataclass(frozen=True, slots=True)
class Totals:
    """Allocatable and used capacity of the ready, schedulable nodes: what the capacity score reads."""

    cpu: int = 0
    cpu_used: int = 0
    memory: int = 0
    memory_used: int = 0
    gpus: int = 0
    gpus_used: int = 0


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """One cluster's nodes, read once.

    `rows`: per node in order, (node, plain, cpu, memory and GPUs it has room for now); a plain node is ready,
    schedulable and has no NoSchedule/NoExecute taint, so only its labels and free capacity decide.
    `bounds`: per GPU type (and over all nodes), the largest free cpu, memory and GPUs of any plain node.
    `shapes`: per GPU type label exactly as the nodes carry it (None: no label; `ANY_GPU_TYPE`: every plain
    node), the free (cpu, memory, GPUs) of plain nodes that no other plain node there beats in all three:
    a pod asking only resources and a GPU type fits on a plain node iff one of these holds it.
    `irregular`: the nodes that are not plain, which only `fit_node` can judge.
    """

    rows: tuple[tuple[NodeState, bool, int, int, int], ...]
    bounds: dict[str, tuple[int, int, int]]
    all_plain: bool
    totals: Totals
    shapes: dict[str | None, tuple[tuple[int, int, int], ...]]
    irregular: tuple[NodeState, ...]


def _plain(n: NodeState) -> bool:
    return n.ready and n.schedulable and not any(t.effect in HARD_NODE_EFFECTS for t in n.taints)


def _widen(bounds: dict[str, tuple[int, int, int]], key: str, free: tuple[int, int, int]) -> None:
    old = bounds.get(key)
    bounds[key] = free if old is None else (max(old[0], free[0]), max(old[1], free[1]), max(old[2], free[2]))


def totals(nodes: Sequence[NodeState]) -> Totals:
    cpu = cpu_used = mem = mem_used = gpus = gpus_used = 0
    for n in nodes:
        if n.ready and n.schedulable:
            cpu += n.cpu_millis
            cpu_used += n.cpu_millis_used
            mem += n.memory_bytes
            mem_used += n.memory_bytes_used
            gpus += n.gpus
            gpus_used += n.gpus_used
    return Totals(cpu, cpu_used, mem, mem_used, gpus, gpus_used)


def _undominated(points: list[tuple[int, int, int]]) -> tuple[tuple[int, int, int], ...]:
    """The distinct points no other point equals or beats in every component (a Pareto frontier)."""
    unique = sorted(set(points), reverse=True)
    kept: list[tuple[int, int, int]] = []
    for p in unique:  # descending: a point can only be beaten by one kept before it
        if not any(k[0] >= p[0] and k[1] >= p[1] and k[2] >= p[2] for k in kept):
            kept.append(p)
    return tuple(kept)


def _shapes(rows: Sequence[tuple[NodeState, bool, int, int, int]]) -> dict[str | None, tuple[tuple[int, int, int], ...]]:
    by_type: dict[str | None, list[tuple[int, int, int]]] = {ANY_GPU_TYPE: []}
    for node, plain, cpu, memory, gpus in rows:
        if plain:
            by_type.setdefault(node.labels.get(GPU_PRODUCT_LABEL), []).append((cpu, memory, gpus))
            by_type[ANY_GPU_TYPE].append((cpu, memory, gpus))
    return {key: _undominated(points) for key, points in by_type.items()}


def summarise(nodes: Sequence[NodeState]) -> NodeSummary:
    rows = []
    bounds: dict[str, tuple[int, int, int]] = {}
    for n in nodes:
        plain = _plain(n)
        free = (  # the node has room now up to the lesser of free and allocatable
            min(n.cpu_millis_free, n.cpu_millis),
            min(n.memory_bytes_free, n.memory_bytes),
            min(n.gpus_free, n.gpus),
        )
        rows.append((n, plain, *free))
        if plain:
            _widen(bounds, n.labels.get(GPU_PRODUCT_LABEL, ""), free)
            _widen(bounds, ANY_GPU_TYPE, free)
    irregular = tuple(r[0] for r in rows if not r[1])
    return NodeSummary(tuple(rows), bounds, not irregular, totals(nodes), _shapes(rows), irregular)


_memo: dict[int, tuple[Sequence[NodeState], NodeSummary]] = {}


def summary_of(nodes: Sequence[NodeState]) -> NodeSummary:
    """The summary of this very node set (by identity), computed on first use."""
    hit = _memo.get(id(nodes))
    if hit is not None and hit[0] is nodes:
        return hit[1]
    if len(_memo) >= _MEMO_LIMIT:
        _memo.clear()
    summary = summarise(nodes)
    _memo[id(nodes)] = (nodes, summary)  # holding `nodes` keeps its id from being reused meanwhile
    return summary


def _simple(needs: PodNeeds) -> bool:
    """Only labels and free capacity decide on a plain node: no required node affinity."""
    return needs.affinity is None


def _ruled_out(needs: PodNeeds, summary: NodeSummary) -> bool:
    """No plain node has room now, by the bounds alone."""
    key = needs.gpu_type if needs.node_selector and GPU_PRODUCT_LABEL in needs.node_selector else ANY_GPU_TYPE
    bound = summary.bounds.get(key)
    return bound is None or needs.cpu_millis > bound[0] or needs.memory_bytes > bound[1] or needs.gpus > bound[2]


def fits_now(needs: PodNeeds, nodes: Sequence[NodeState]) -> bool:
    """Whether `fit_nodes(needs, nodes)` would say FITS, without its reasons: for a pod asking only
    resources and at most a GPU type, one look at the frontier of free shapes, then the irregular nodes."""
    selector = needs.node_selector
    if needs.affinity is not None or (selector and (len(selector) > 1 or GPU_PRODUCT_LABEL not in selector)):
        return first_fit(needs, nodes).fit is Fit.FITS
    summary = summary_of(nodes)
    cpu, memory, gpus = needs.cpu_millis, needs.memory_bytes, needs.gpus
    for free_cpu, free_memory, free_gpus in summary.shapes.get(selector[GPU_PRODUCT_LABEL] if selector else ANY_GPU_TYPE, ()):
        if cpu <= free_cpu and memory <= free_memory and gpus <= free_gpus:
            return True
    return any(fit_node(needs, n).fit is Fit.FITS for n in summary.irregular)


def first_fit(needs: PodNeeds, nodes: Sequence[NodeState]) -> NodeFit:
    """Exactly `fit_nodes(needs, nodes)`, reading the nodes' summary instead of every node."""
    summary = summary_of(nodes)
    if not summary.rows or not _simple(needs) or (summary.all_plain and _ruled_out(needs, summary)):
        return fit_nodes(needs, nodes)
    selector = tuple((needs.node_selector or {}).items())
    cpu, memory, gpus = needs.cpu_millis, needs.memory_bytes, needs.gpus
    for node, plain, cpu_free, memory_free, gpus_free in summary.rows:
        if plain:
            if cpu > cpu_free or memory > memory_free or gpus > gpus_free:
                continue
            labels = node.labels
            if all(labels.get(k) == v for k, v in selector):
                return NodeFit(Fit.FITS, f"fits on node {node.name}", node.name)
        elif fit_node(needs, node).fit is Fit.FITS:
            return NodeFit(Fit.FITS, f"fits on node {node.name}", node.name)
    return fit_nodes(needs, nodes)  # none fits now: the exact reasons, node by node
