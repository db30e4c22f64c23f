"""Scoring terms: free capacity after placement, strategies, weight, stability, soft taints."""

from __future__ import annotations

import pytest

from gateway.domain import (
    ClusterSnapshot,
    ClusterSpec,
    CredentialsRef,
    NodeState,
    Preference,
    Taint,
    TaintEffect,
    Toleration,
)
from gateway.placement.node_fit import PodNeeds
from gateway.placement.scoring import PlacementPolicy, free_fraction_after, score_cluster
from gateway.placement.selectors import parse_selector

GI = 2**30
HALF_USED = NodeState(name="a", cpu_millis=4000, memory_bytes=8 * GI, cpu_millis_used=2000, memory_bytes_used=4 * GI)


@pytest.mark.parametrize(
    ("needs", "nodes", "expected"),
    [
        (PodNeeds(), (HALF_USED,), 0.5),
        (PodNeeds(cpu_millis=1000, memory_bytes=2 * GI), (HALF_USED,), 0.25),
        (PodNeeds(cpu_millis=4000), (HALF_USED,), 0.25),  # cpu share floors at 0, memory stays 0.5
        (PodNeeds(), (HALF_USED, NodeState(name="b", cpu_millis=4000, memory_bytes=8 * GI)), 0.75),
        (PodNeeds(), (HALF_USED, NodeState(name="b", cpu_millis=4000, memory_bytes=8 * GI, ready=False)), 0.5),
        (PodNeeds(), (HALF_USED, NodeState(name="b", cpu_millis=4000, memory_bytes=8 * GI, schedulable=False)), 0.5),
        (
            PodNeeds(gpus=1),
            (NodeState(name="g", cpu_millis=1000, memory_bytes=GI, gpus=4, gpus_used=1),),
            (1 + 1 + 0.5) / 3,
        ),
        (
            PodNeeds(),
            (NodeState(name="g", cpu_millis=1000, memory_bytes=GI, gpus=4, gpus_used=4),),
            1.0,
        ),  # GPUs ignored for CPU pods
        (PodNeeds(), (), 0.0),
    ],
)
def test_free_fraction_after(needs: PodNeeds, nodes: tuple[NodeState, ...], expected: float) -> None:
    assert free_fraction_after(needs, nodes) == pytest.approx(expected)


def snapshot(
    *, weight: int = 100, labels: dict[str, str] | None = None, taints: tuple[Taint, ...] = ()
) -> ClusterSnapshot:
    spec = ClusterSpec(
        name="c",
        provider="sim",
        credentials=CredentialsRef(source="sim"),
        region="r",
        weight=weight,
        labels=labels or {},
        taints=taints,
    )
    return ClusterSnapshot(spec=spec, nodes=(HALF_USED,))


SOFT = (
    Taint(key="spot", effect=TaintEffect.PREFER_NO_SELECT),
    Taint(key="old", value="yes", effect=TaintEffect.PREFER_NO_SELECT),
)


@pytest.mark.parametrize(
    ("cluster", "kwargs", "total", "described"),
    [
        (snapshot(), {}, 60.0, "score 60 = free capacity 50 (least-loaded) + weight 10"),
        (
            snapshot(),
            {"policy": PlacementPolicy(strategy="bin-packing")},
            60.0,
            "score 60 = free capacity 50 (bin-packing) + weight 10",
        ),
        (snapshot(weight=1000), {}, 150.0, "score 150 = free capacity 50 (least-loaded) + weight 100"),
        (snapshot(weight=1), {"policy": PlacementPolicy(weight_factor=1.0)}, 51.0, "+ weight 1"),
        (snapshot(), {"previous": "c"}, 80.0, "+ stability 20 (previous cluster)"),
        (snapshot(), {"previous": "other"}, 60.0, "score 60 = free capacity 50 (least-loaded) + weight 10"),
        (
            snapshot(labels={"tier": "prod"}),
            {
                "preferences": (
                    Preference(weight=7, selector=parse_selector("tier=prod", field="p")),
                    Preference(weight=3, selector=parse_selector("ssd", field="p")),
                )
            },
            67.0,
            "score 67 = preferences 7 (1 of 2 matched) + free capacity 50",
        ),
        (snapshot(taints=SOFT), {}, -40.0, "- 100 (untolerated spot:PreferNoSelect, old=yes:PreferNoSelect)"),
        (
            snapshot(taints=SOFT),
            {"tolerations": (Toleration(key="spot", operator="Exists"),)},
            10.0,
            "- 50 (untolerated old=yes:PreferNoSelect)",
        ),
        (snapshot(taints=(Taint(key="hard"),)), {}, 60.0, "score 60"),  # NoSelect is a filter, not a score term
    ],
)
def test_score_terms(cluster: ClusterSnapshot, kwargs: dict[str, object], total: float, described: str) -> None:
    args: dict[str, object] = {"preferences": (), "tolerations": (), "policy": PlacementPolicy(), "previous": ""}
    args.update(kwargs)
    score = score_cluster(cluster, PodNeeds(), **args)  # type: ignore[arg-type]
    assert score.total == total
    assert described in score.describe()
