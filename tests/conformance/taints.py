"""Toleration matching: (toleration, taint) -> tolerated.

Kubernetes' rule (k8s.io/api/core/v1 toleration.go, Toleration.ToleratesTaint):
- a non-empty toleration effect must equal the taint's effect (empty tolerates every effect);
- a non-empty toleration key must equal the taint's key (empty matches every key);
- operator "" or Equal: the values must be equal; Exists: any value; any other operator: nothing.
The scheduler's TaintToleration filter then only considers NoSchedule and NoExecute taints
(PreferNoSchedule is a score), and its NodeUnschedulable filter treats a cordoned node as carrying
node.kubernetes.io/unschedulable:NoSchedule (both in node_fit.py).
"""

from __future__ import annotations

from typing import Any

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}

TOLERATIONS: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, TAINT, True),
    ({"key": "dedicated", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}, TAINT, False),
    ({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, TAINT, True),  # no operator: Equal
    ({"key": "dedicated", "operator": "", "value": "gpu"}, TAINT, True),
    ({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, TAINT, True),
    ({"key": "dedicated", "operator": "Exists"}, TAINT, True),  # empty effect: every effect
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, TAINT, False),
    ({"key": "other", "operator": "Exists"}, TAINT, False),
    ({"operator": "Exists"}, TAINT, True),  # empty key with Exists: everything
    ({"operator": "Exists", "effect": "NoExecute"}, TAINT, False),
    ({"operator": "Exists", "effect": "NoExecute"}, {**TAINT, "effect": "NoExecute"}, True),
    ({"key": "dedicated", "operator": "Equal", "value": "gpu"}, {**TAINT, "effect": "PreferNoSchedule"}, True),
    ({"key": "dedicated", "operator": "Foo", "value": "gpu"}, TAINT, False),  # unknown operator
    ({"key": "dedicated", "operator": "equal", "value": "gpu"}, TAINT, False),  # operators are case-sensitive
    ({"key": "dedicated", "operator": "Exists", "value": "cpu"}, TAINT, True),  # Exists ignores the value
    ({"key": "flag", "operator": "Equal"}, {"key": "flag", "effect": "NoSchedule"}, True),  # empty values
    ({"operator": "Equal"}, {"key": "flag", "effect": "NoSchedule"}, True),  # empty key + Equal: value compared
    ({"operator": "Equal"}, TAINT, False),
]
