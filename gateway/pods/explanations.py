"""A placement's table of every cluster's verdict, built only when someone asks for it (docs/decisions/0029).

The runner places with the fast path and stores the decision as carried out with the chosen cluster's row
only: building every cluster's verdict and reason costs ~20 ms among 1,000 clusters, and almost no pod's
table is ever read. What the table is built from (the frozen snapshots the decision was made on, the
request read once, the policy) is kept in memory for the most recent decisions of this process; GetPod
expands a stored decision it still holds the inputs of into the whole table, exactly what an eager table
would have been then. A decision no longer held (older than the last `KEPT` placements, made by another
replica or before a restart) is shown as stored: never recomputed against today's fleet.

A small fleet's table is cheap (~20 µs a cluster) and is what an operator reads first when a pod went
somewhere unexpected, on whichever replica they ask: up to `STORED_TABLE_UP_TO` clusters it is stored
whole with the decision, as before 0029, and the RunPod/WatchPod `placed` event carries it.

Pure: a bounded dictionary, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from gateway import domain
from gateway.placement.engine import Placement

KEPT = 1024  # decisions whose inputs are held: ~8 KiB each among 1,000 clusters (the snapshots are shared)
STORED_TABLE_UP_TO = 8  # clusters: a fleet this small has its whole table stored with each decision


def carried_out(placement: Placement, cluster: str) -> domain.PlacementDecision:
    """The decision as stored: `cluster` chosen (after failover when it was not the first choice), with its
    row only, or every cluster's in a fleet of up to `STORED_TABLE_UP_TO`."""
    decision = placement.decision
    whole = len(placement.snapshots) <= STORED_TABLE_UP_TO
    # a small fleet's row is read from its table (built to be stored), not judged again
    row = next(v for v in placement.table() if v.cluster == cluster) if whole else placement.row(cluster)
    reason = (
        decision.reason
        if decision.cluster == cluster
        else f"placed on {cluster} after failover ({len(decision.candidate_names) - 1} other candidates)"
    )
    stored = domain.PlacementDecision(verdicts=(_marked(row, True),), cluster=cluster, region=row.region, reason=reason)
    return with_table(stored, placement) if whole else stored


def with_table(stored: domain.PlacementDecision, placement: Placement) -> domain.PlacementDecision:
    """`stored` with every cluster's verdict, best first, its own cluster marked chosen."""
    verdicts = tuple(_marked(v, v.cluster == stored.cluster) for v in placement.table())
    return replace(stored, verdicts=verdicts)


def _marked(verdict: domain.ClusterVerdict, chosen: bool) -> domain.ClusterVerdict:
    return verdict if verdict.chosen == chosen else replace(verdict, chosen=chosen)


class Explanations:
    """The inputs of this process's most recent stored decisions, by request id."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._held: OrderedDict[str, tuple[domain.PlacementDecision, Placement]] = OrderedDict()

    def remember(self, request_id: str, stored: domain.PlacementDecision, placement: Placement) -> None:
        """`stored` (as `carried_out` made it) was recorded for `request_id`, decided as `placement`."""
        if len(stored.verdicts) == len(placement.snapshots):  # a small fleet's: stored whole, nothing to expand
            return
        self._held[request_id] = (stored, placement)
        self._held.move_to_end(request_id)
        while len(self._held) > self._kept:
            self._held.popitem(last=False)

    def holds(self, request_id: str) -> bool:
        return request_id in self._held

    def explained(self, record: domain.PodRecord) -> domain.PodRecord:
        """`record` with its placement's whole table when this process holds what it was decided from; as
        stored otherwise (also when the stored decision is not the one held: re-placed elsewhere since)."""
        held = self._held.get(record.request.request_id)
        if held is None or record.decision is None or record.decision != held[0]:
            return record
        return replace(record, decision=with_table(record.decision, held[1]))
