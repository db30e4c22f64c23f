"""Per-cluster placement outcomes remembered between placements while nothing they depend on changed.

A cluster's verdict, score and reason depend only on the request's shape (the placement spec, the
namespace, what the pod asks of a node), the policy, whether the cluster is the request's previous one,
and the cluster's snapshot: its spec, health, cordon, running pod count and node set. Requests repeat
their shapes (a DAG's tasks), and between two placements usually one cluster's capacity changed (the
pod just placed), so most clusters' outcomes can be reused exactly instead of recomputed. Identity is
enough for the spec and the node set: the registry keeps a cluster's spec object until it is replaced,
and the capacity book hands out the same nodes tuple until a node or a pod on it changes.

Pure: a dictionary in memory, bounded, with no clock and no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from gateway.domain import ClusterSnapshot

_T = TypeVar("_T")
SHAPES_KEPT = 32  # request shapes remembered, least recently used dropped first

_Entry = tuple[object, object, tuple[object, ...], Any]  # spec, nodes, the rest of the cluster's state, outcome


class OutcomeMemo(Generic[_T]):
    """Outcomes by request shape, then by cluster name; an entry is used only if its cluster is unchanged."""

    def __init__(self, shapes: int = SHAPES_KEPT) -> None:
        self._shapes: OrderedDict[Hashable, dict[str, _Entry]] = OrderedDict()
        self._limit = shapes

    def table(self, shape: Hashable) -> dict[str, _Entry]:
        table = self._shapes.get(shape)
        if table is None:
            table = self._shapes[shape] = {}
            if len(self._shapes) > self._limit:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(shape)
        return table

    def outcomes(
        self, shape: Hashable, clusters: Sequence[ClusterSnapshot], previous: str, compute: Callable[..., _T], *args: object
    ) -> list[_T]:
        """Each cluster's remembered outcome when it is unchanged, else `compute(s, *args)` (then remembered).

        One loop with the checks inline: this runs for every cluster of every placement."""
        table = self.table(shape)
        out: list[_T] = []
        for s in clusters:
            spec = s.spec
            hit = table.get(spec.name)
            state = (s.health, s.cordoned, s.cordon_reason, s.running_pods, spec.name == previous)
            if hit is not None and hit[0] is spec and hit[1] is s.nodes and hit[2] == state:
                out.append(hit[3])
                continue
            value = compute(s, *args)
            table[spec.name] = (spec, s.nodes, state, value)
            out.append(value)
        return out
