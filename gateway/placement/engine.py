"""Placement: filter every cluster, score the eligible ones, choose the best, and say why for each."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from gateway.domain import ClusterSnapshot, ClusterVerdict, PlacementDecision, PodRequest, Verdict
from gateway.errors import PreconditionViolation
from gateway.placement.fast import FULL_UP_TO, FleetIndex
from gateway.placement.filters import Prepared, evaluate
from gateway.placement.memo import OutcomeMemo
from gateway.placement.node_fit import request_needs
from gateway.placement.scoring import PlacementPolicy, score_cluster

DEFAULT_POLICY = PlacementPolicy()
_LIST_ALL_UP_TO = 5
MAX_VIOLATIONS = 10
MAX_VIOLATION_CHARS = 300
_ORDER = {Verdict.ELIGIBLE: 0, Verdict.NO_CAPACITY: 1, Verdict.REJECTED: 2}


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: ClusterVerdict
    constraint: str  # "" when eligible
    rank: tuple[int, float, str] = (0, 0.0, "")  # best first; set by _outcome, remembered with it


def _outcome(verdict: ClusterVerdict, constraint: str) -> _Outcome:
    return _Outcome(verdict, constraint, (_ORDER[verdict.verdict], -verdict.score, verdict.cluster))


def prepare(request: PodRequest) -> Prepared:
    """Read the pod once; InvalidArgument for bad resources or node affinity."""
    metadata = request.pod.get("metadata") or {}
    return Prepared(
        spec=request.placement,
        namespace=metadata.get("namespace") or "default",
        needs=request_needs(request),
    )


def _shape(p: Prepared, policy: PlacementPolicy) -> Hashable:
    """Everything of a request and policy that a cluster's outcome depends on, as a dictionary key."""
    n = p.needs
    selector = tuple(sorted(n.node_selector.items())) if n.node_selector is not None else None
    return (p.spec, p.namespace, n.cpu_millis, n.memory_bytes, n.gpus, selector, n.affinity, n.tolerations, policy)


MEMO: OutcomeMemo[_Outcome] = OutcomeMemo()  # the process's; a test passes a fresh one to compare
FLEET = FleetIndex(full_up_to=FULL_UP_TO)  # the process's, kept up with the registry's snapshots


def _judge_all(
    p: Prepared, clusters: Sequence[ClusterSnapshot], policy: PlacementPolicy, previous: str, memo: OutcomeMemo[_Outcome]
) -> list[_Outcome]:
    """Every cluster's outcome, reusing those of clusters unchanged since this request shape was placed."""
    return memo.outcomes(_shape(p, policy), clusters, previous, _judge, p, policy, previous)


def _judge(s: ClusterSnapshot, p: Prepared, policy: PlacementPolicy, previous: str) -> _Outcome:
    rejection, fit = evaluate(s, p, policy)
    name, region = s.spec.name, s.spec.region
    if rejection is not None:
        return _outcome(
            ClusterVerdict(cluster=name, region=region, verdict=rejection.verdict, reason=rejection.reason),
            rejection.constraint,
        )
    score = score_cluster(
        s, p.needs, preferences=p.spec.preferences, tolerations=p.spec.tolerations, policy=policy, previous=previous
    )
    reason = f"{fit.reason}; {score.describe()}" if fit else score.describe()
    return _outcome(
        ClusterVerdict(cluster=name, region=region, verdict=Verdict.ELIGIBLE, reason=reason, score=score.total), ""
    )


_WORDS = {Verdict.ELIGIBLE: "eligible", Verdict.NO_CAPACITY: "without room now", Verdict.REJECTED: "rejected"}


def _sort_key(o: _Outcome) -> tuple[int, float, str]:
    return o.rank


def _summary(outcomes: Sequence[_Outcome]) -> str:
    if len(outcomes) <= _LIST_ALL_UP_TO:
        return "; ".join(f"{o.verdict.cluster}: {o.verdict.reason}" for o in outcomes)
    groups = []
    for verdict in (Verdict.NO_CAPACITY, Verdict.REJECTED):
        label = _WORDS[verdict]
        counts = Counter(o.constraint for o in outcomes if o.verdict.verdict is verdict)
        if counts:
            detail = ", ".join(f"{c} {n}" for c, n in counts.most_common())
            groups.append(f"{sum(counts.values())} {label} ({detail})")
    first = outcomes[0].verdict
    return f"{'; '.join(groups)}; first: {first.cluster}: {first.reason}"


def _missing_clusters(p: Prepared, clusters: Sequence[ClusterSnapshot]) -> str:
    if not p.spec.clusters:
        return ""
    missing = p.spec.clusters - {s.spec.name for s in clusters}
    return f"; requested cluster(s) not registered: {', '.join(sorted(missing))}" if missing else ""


@dataclass(frozen=True, slots=True)
class Placement:
    """A decision with what it was decided from: the frozen snapshots, the request read once, the policy.

    Its table (every cluster's verdict) or one cluster's row is built from those inputs when asked for,
    so either is what an eager table would have held at the moment of the decision, however the fleet
    changed since (docs/decisions/0029)."""

    decision: PlacementDecision
    p: Prepared
    snapshots: tuple[ClusterSnapshot, ...]
    policy: PlacementPolicy
    previous: str

    def table(self) -> tuple[ClusterVerdict, ...]:
        """Every cluster's verdict, best first, the first choice marked chosen (built once, on first call)."""
        return self.decision.verdicts

    def row(self, cluster: str) -> ClusterVerdict:
        """`cluster`'s verdict as the table gives it (not marked chosen), without building the table."""
        snapshot = next(s for s in self.snapshots if s.spec.name == cluster)
        return _judge(snapshot, self.p, self.policy, self.previous).verdict


def place(
    request: PodRequest,
    clusters: Sequence[ClusterSnapshot],
    policy: PlacementPolicy = DEFAULT_POLICY,
    previous: str = "",
    *,
    memo: OutcomeMemo[_Outcome] = MEMO,
    fleet: FleetIndex = FLEET,
) -> PlacementDecision:
    """Every cluster's verdict, best first; the best eligible cluster is chosen.

    `previous` is the cluster the request ran on before (a retry or reattach): it scores a stability
    bonus but is never exempt from a hard constraint. When a cluster is eligible, `fleet` finds which
    are and the best of them without judging every cluster, and the table of every cluster's verdict
    is built from the same inputs when first read (`PlacementDecision.deferred`); when none is, the
    table is the answer and is built at once. Either way the decision is `place_fully`'s.
    """
    return placement(request, clusters, policy, previous, memo=memo, fleet=fleet).decision


def placement(
    request: PodRequest,
    clusters: Sequence[ClusterSnapshot],
    policy: PlacementPolicy = DEFAULT_POLICY,
    previous: str = "",
    *,
    memo: OutcomeMemo[_Outcome] = MEMO,
    fleet: FleetIndex = FLEET,
) -> Placement:
    """`place`'s decision with its inputs, for a caller that shows the table only when asked (the runner)."""
    p = prepare(request)
    snapshots = tuple(clusters)  # frozen snapshots: the table built later sees what was decided on
    ranking = fleet.rank(p, snapshots, previous) if fleet.sync(snapshots, policy) else None
    if ranking is None:  # no cluster eligible: the table is the answer (or a small fleet, or two share a name)
        return Placement(_decide(p, snapshots, policy, previous, memo), p, snapshots, policy, previous)
    best = _judge(snapshots[ranking.best], p, policy, previous).verdict  # exact node fit: the winner only
    reason = (
        f"placed on {best.cluster} ({best.region}): {len(ranking.eligible)} of {len(snapshots)} clusters eligible; "
        f"{best.reason}"
    )
    decision = PlacementDecision.deferred(
        lambda: _decide(p, snapshots, policy, previous, memo).verdicts,
        ranking.exact_order,
        cluster=best.cluster,
        region=best.region,
        reason=reason,
    )
    return Placement(decision, p, snapshots, policy, previous)


def is_candidate(
    request: PodRequest, clusters: Sequence[ClusterSnapshot], cluster: str, policy: PlacementPolicy = DEFAULT_POLICY
) -> bool:
    """Whether `cluster` is among the candidates (`candidate_names`) of `placement(request, clusters, policy)`,
    without placing: a cluster is a candidate exactly when its own filters pass (its verdict is Eligible),
    whatever the other clusters' verdicts, and `previous` moves scores only. False when no snapshot, or more
    than one, bears that name (for the caller to place in full)."""
    named = [s for s in clusters if s.spec.name == cluster]
    if len(named) != 1:
        return False
    rejection, _ = evaluate(named[0], prepare(request), policy)
    return rejection is None


def place_fully(
    request: PodRequest,
    clusters: Sequence[ClusterSnapshot],
    policy: PlacementPolicy = DEFAULT_POLICY,
    previous: str = "",
    *,
    memo: OutcomeMemo[_Outcome] = MEMO,
) -> PlacementDecision:
    """Every cluster judged and the whole table built at once: what `place` is held to in tests."""
    return _decide(prepare(request), clusters, policy, previous, memo)


def _decide(
    p: Prepared, clusters: Sequence[ClusterSnapshot], policy: PlacementPolicy, previous: str, memo: OutcomeMemo[_Outcome]
) -> PlacementDecision:
    outcomes = sorted(_judge_all(p, clusters, policy, previous, memo), key=_sort_key)
    eligible = [o for o in outcomes if o.verdict.verdict is Verdict.ELIGIBLE]
    missing = _missing_clusters(p, clusters)
    if not outcomes:
        return PlacementDecision(verdicts=(), reason=f"no cluster is registered{missing}")
    if not eligible:
        verdicts = tuple(o.verdict for o in outcomes)
        head = (
            "no cluster has room now"
            if outcomes[0].verdict.verdict is Verdict.NO_CAPACITY
            else "no cluster satisfies the constraints"
        )
        return PlacementDecision(verdicts=verdicts, reason=f"{head}: {_summary(outcomes)}{missing}")
    best = eligible[0].verdict
    chosen = ClusterVerdict(
        cluster=best.cluster,
        region=best.region,
        verdict=best.verdict,
        reason=best.reason,
        score=best.score,
        chosen=True,
    )
    verdicts = (chosen, *(o.verdict for o in outcomes[1:]))
    reason = (
        f"placed on {best.cluster} ({best.region}): {len(eligible)} of {len(outcomes)} clusters eligible; {best.reason}"
    )
    return PlacementDecision(verdicts=verdicts, cluster=best.cluster, region=best.region, reason=reason)


def unsatisfiable_violations(
    decision: PlacementDecision, *, limit: int = MAX_VIOLATIONS, max_chars: int = MAX_VIOLATION_CHARS
) -> list[PreconditionViolation]:
    """One PLACEMENT violation per cluster that was not eligible, for a FAILED_PRECONDITION status.

    Bounded: status details travel in gRPC trailers, which clients refuse beyond 8 KiB by default. Past
    `limit` clusters one last violation counts the rest; ExplainPlacement shows the full table.
    """
    failed = [v for v in decision.verdicts if v.verdict is not Verdict.ELIGIBLE]
    out = [
        PreconditionViolation(type="PLACEMENT", subject=v.cluster, description=_clip(v.reason, max_chars))
        for v in failed[:limit]
    ]
    if len(failed) > limit:
        rest = Counter(_WORDS[v.verdict] for v in failed[limit:])
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(rest.items()))
        out.append(
            PreconditionViolation(
                type="PLACEMENT",
                subject=f"{len(failed) - limit} more clusters",
                description=f"{counts}; ExplainPlacement lists every cluster with its reason",
            )
        )
    return out


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."
