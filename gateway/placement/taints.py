"""Toleration matching with Kubernetes semantics, shared by cluster taints and node taints.

The rule is core/v1 Toleration.ToleratesTaint: an empty effect matches every effect, an empty key every
key; operator Exists matches any value, Equal (or empty) the taint's value exactly, any other operator
nothing. The simulator's scheduler implements it separately; tests/conformance/ holds both to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.domain import Toleration

# The NodeUnschedulable filter treats a cordoned node as carrying this taint.
UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"


def tolerates(toleration: Toleration, *, key: str, value: str, effect: str) -> bool:
    if toleration.effect and toleration.effect != effect:
        return False
    if toleration.key and toleration.key != key:
        return False
    if toleration.operator == "Exists":
        return True
    return toleration.operator in ("", "Equal") and toleration.value == value


def tolerated(tolerations: Sequence[Toleration], *, key: str, value: str, effect: str) -> bool:
    return any(tolerates(t, key=key, value=value, effect=effect) for t in tolerations)
