"""The gateway's placement/ and the simulator's sim/ behind one small interface, for the conformance table.

Each adapter only translates shapes (Kubernetes dicts <-> the domain types placement works on); the
decisions stay in the implementation under test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from gateway.clusters.capacity import CapacityBook
from gateway.domain import Toleration
from gateway.errors import InvalidArgument
from gateway.placement import quantity as placement_quantity
from gateway.placement.node_fit import Fit, fit_node, pod_needs
from gateway.placement.selectors import from_parts, matches, parse_selector
from gateway.placement.taints import tolerates as placement_tolerates
from gateway.sim import fit as sim_fit
from gateway.sim import quantity as sim_quantity
from gateway.sim.errors import BadRequest
from gateway.sim.selectors import parse_label_selector

REFUSED = "refused"
Obj = Mapping[str, Any]


def _nanos(value: Fraction) -> int:
    nanos = value * 10**9
    assert nanos.denominator == 1, f"{value} is not a whole number of nanounits"
    return nanos.numerator


@dataclass(frozen=True)
class Placement:
    name: str = "placement"

    def quantity(self, raw: Any) -> int | str:
        try:
            return _nanos(placement_quantity.parse_quantity(raw))
        except ValueError:
            return REFUSED

    def millis(self, raw: Any) -> int:
        return placement_quantity.to_millis(placement_quantity.parse_quantity(raw))

    def units(self, raw: Any) -> int:
        return placement_quantity.to_units(placement_quantity.parse_quantity(raw))

    def selector(self, text: str, labels: Mapping[str, str]) -> bool | str:
        try:
            return matches(parse_selector(text, field="selector"), labels)
        except InvalidArgument:
            return REFUSED

    def expressions(self, expressions: Sequence[Obj], labels: Mapping[str, str]) -> bool | str:
        """REFUSED where the gateway refuses at its edge what the scheduler would only never match
        (a Gt/Lt bound that is no int64)."""
        try:
            return matches(from_parts(match_expressions=expressions, field="expressions"), labels)
        except InvalidArgument:
            return REFUSED

    def tolerates(self, toleration: Obj, taint: Obj) -> bool:
        t = Toleration(
            key=toleration.get("key") or "",
            operator=toleration.get("operator", "Equal"),
            value=toleration.get("value") or "",
            effect=toleration.get("effect") or "",
        )
        return placement_tolerates(t, key=taint["key"], value=taint.get("value") or "", effect=taint["effect"])

    def fits(self, spec: Obj, node: Obj, bound: Sequence[Obj]) -> bool:
        book = CapacityBook()
        book.reset(nodes=[node], pods=bound)
        return fit_node(pod_needs({"spec": spec}), book.nodes()[0]).fit is Fit.FITS


@dataclass(frozen=True)
class Simulator:
    name: str = "sim"

    def quantity(self, raw: Any) -> int | str:
        try:
            return _nanos(sim_quantity.parse_quantity(raw))
        except sim_quantity.QuantityError:
            return REFUSED

    def millis(self, raw: Any) -> int:
        return sim_quantity.to_millis(raw)

    def units(self, raw: Any) -> int:
        return sim_quantity.to_int(raw)

    def selector(self, text: str, labels: Mapping[str, str]) -> bool | str:
        try:
            return parse_label_selector(text).matches(labels)
        except BadRequest:
            return REFUSED

    def expressions(self, expressions: Sequence[Obj], labels: Mapping[str, str]) -> bool:
        node = {"metadata": {"name": "n", "labels": dict(labels)}}
        return sim_fit._term_matches({"matchExpressions": list(expressions)}, node)

    def tolerates(self, toleration: Obj, taint: Obj) -> bool:
        return sim_fit.tolerates(toleration, taint)

    def fits(self, spec: Obj, node: Obj, bound: Sequence[Obj]) -> bool:
        used = sim_fit.usage_by_node(bound).get(node["metadata"]["name"], {})
        return sim_fit.node_failure(spec, sim_fit.pod_requests(spec), node, used) is None


IMPLEMENTATIONS = (Placement(), Simulator())
