"""Every row of the conformance table, against both the gateway's placement/ and the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.implementations import IMPLEMENTATIONS, Placement, Simulator
from tests.conformance.node_fit import NODE_FIT
from tests.conformance.quantities import QUANTITIES
from tests.conformance.selectors import EXPRESSIONS, LABELS, SELECTOR_STRINGS
from tests.conformance.taints import TOLERATIONS

Implementation = Placement | Simulator
both = pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)


@both
@pytest.mark.parametrize(("raw", "nanos"), QUANTITIES, ids=[repr(r)[:40] for r, _ in QUANTITIES])
def test_quantity(impl: Implementation, raw: Any, nanos: int | str) -> None:
    assert impl.quantity(raw) == nanos


@both
@pytest.mark.parametrize(
    ("raw", "nanos"),
    [(raw, nanos) for raw, nanos in QUANTITIES if isinstance(nanos, int) and nanos >= 0],
    ids=lambda v: repr(v)[:40],
)
def test_millis_and_units_round_up(impl: Implementation, raw: Any, nanos: int) -> None:
    """MilliValue and Value: ceil(value * 1000) and ceil(value)."""
    assert impl.millis(raw) == -(-nanos // 10**6)
    assert impl.units(raw) == -(-nanos // 10**9)


@both
@pytest.mark.parametrize(("text", "expected"), SELECTOR_STRINGS, ids=[repr(t)[:40] for t, _ in SELECTOR_STRINGS])
def test_selector_string(impl: Implementation, text: str, expected: bool | str) -> None:
    assert impl.selector(text, LABELS) == expected


@both
@pytest.mark.parametrize(("expressions", "expected"), EXPRESSIONS, ids=[str(i) for i in range(len(EXPRESSIONS))])
def test_match_expressions(impl: Implementation, expressions: list[dict[str, Any]], expected: bool) -> None:
    assert impl.expressions(expressions, LABELS) is expected


@both
@pytest.mark.parametrize(("toleration", "taint", "expected"), TOLERATIONS, ids=[str(i) for i in range(len(TOLERATIONS))])
def test_toleration(impl: Implementation, toleration: dict[str, Any], taint: dict[str, Any], expected: bool) -> None:
    assert impl.tolerates(toleration, taint) is expected


@both
@pytest.mark.parametrize(("case", "spec", "node", "bound", "expected"), NODE_FIT, ids=[row[0] for row in NODE_FIT])
def test_node_fit(
    impl: Implementation, case: str, spec: dict[str, Any], node: dict[str, Any], bound: list[Any], expected: bool
) -> None:
    assert impl.fits(spec, node, bound) is expected, case
