"""Placement: pure logic choosing a cluster for a pod request, with a reason for every verdict."""

from gateway.placement.engine import (
    DEFAULT_POLICY,
    Placement,
    place,
    place_fully,
    placement,
    prepare,
    unsatisfiable_violations,
)
from gateway.placement.scoring import STRATEGIES, PlacementPolicy

__all__ = [
    "DEFAULT_POLICY",
    "STRATEGIES",
    "Placement",
    "PlacementPolicy",
    "place",
    "place_fully",
    "placement",
    "prepare",
    "unsatisfiable_violations",
]
