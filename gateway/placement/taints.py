"""Toleration matching with Kubernetes semantics, shared by cluster taints and node taints."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.domain import Toleration


def tolerates(toleration: Toleration, *, key: str, value: str, effect: str) -> bool:
    """An empty key with Exists tolerates every key; an empty effect tolerates every effect."""
    if toleration.effect and toleration.effect != effect:
        return False
    if toleration.key and toleration.key != key:
        return False
    if toleration.operator == "Exists":
        return True
    return bool(toleration.key) and toleration.value == value


def tolerated(tolerations: Sequence[Toleration], *, key: str, value: str, effect: str) -> bool:
    return any(tolerates(t, key=key, value=value, effect=effect) for t in tolerations)
