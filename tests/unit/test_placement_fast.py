"""Placement's fast paths choose exactly what the full path chooses, with the same reasons.

Two shortcuts make placement among many clusters cheap: node summaries (`first_fit` reads a cluster's
nodes as flat rows and bounds instead of running `fit_node` on each) and the outcome memo (a cluster
unchanged since the same request shape was placed keeps its verdict). Both must be invisible: these
properties compare them with the node-by-node `fit_nodes` and with a placement from a fresh memo.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.domain import (
    GPU_PRODUCT_LABEL,
    ClusterHealth,
    ClusterSnapshot,
    ClusterSpec,
    CredentialsRef,
    NodeState,
    NodeTaint,
    PlacementSpec,
    PodRequest,
    Preference,
    Toleration,
)
from gateway.placement import PlacementPolicy, place
from gateway.placement.memo import OutcomeMemo
from gateway.placement.node_fit import fit_nodes, pod_needs
from gateway.placement.selectors import parse_selector
from gateway.placement.summary import first_fit, summarise, summary_of

GI = 2**30
GPU_TYPES = ("A100", "H100", "")
PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)

taints = st.lists(
    st.builds(
        NodeTaint,
        key=st.sampled_from(("dedicated", "gpu")),
        value=st.sampled_from(("", "ml")),
        effect=st.sampled_from(("NoSchedule", "NoExecute", "PreferNoSchedule")),
    ),
    max_size=2,
).map(tuple)


@st.composite
def nodes(draw: Any, name: str = "n", roomy: bool = False) -> NodeState:
    """`roomy`: most nodes ready, untainted and half empty, so that many clusters are eligible."""
    gpus = draw(st.sampled_from((0, 0, 2, 8)))
    cpu = draw(st.sampled_from((2000, 8000, 32000)))
    mem = draw(st.sampled_from((4 * GI, 32 * GI)))
    labels = {}
    if gpu := draw(st.sampled_from(GPU_TYPES)):
        labels[GPU_PRODUCT_LABEL] = gpu
    if draw(st.booleans()):
        labels["zone"] = draw(st.sampled_from(("a", "b")))
    return NodeState(
        name=name,
        labels=labels,
        taints=() if roomy else draw(taints),
        ready=roomy or draw(st.booleans()),
        schedulable=roomy or draw(st.booleans()),
        cpu_millis=cpu,
        memory_bytes=mem,
        gpus=gpus,
        cpu_millis_used=draw(st.integers(0, cpu // 2 if roomy else cpu + 1000)),  # may exceed allocatable
        memory_bytes_used=draw(st.sampled_from((0, GI) if roomy else (0, GI, 4 * GI, 40 * GI))),
        gpus_used=draw(st.integers(0, gpus // 2 if roomy else gpus + 1)),
    )


@st.composite
def node_sets(draw: Any, roomy: bool = False) -> tuple[NodeState, ...]:
    count = draw(st.integers(1 if roomy else 0, 6))
    return tuple(draw(nodes(name=f"n{i}", roomy=roomy and draw(st.integers(0, 3)) > 0)) for i in range(count))


@st.composite
def pods(draw: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "requests": {"cpu": draw(st.sampled_from(("100m", "1", "4", "30"))), "memory": draw(st.sampled_from(("1Gi", "8Gi")))}
    }
    if gpus := draw(st.sampled_from((0, 0, 1, 4))):
        resources["limits"] = {"nvidia.com/gpu": gpus}
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox", "resources": resources}]}
    selector = {}
    if gpu := draw(st.sampled_from(GPU_TYPES)):
        selector[GPU_PRODUCT_LABEL] = gpu
    if draw(st.booleans()):
        selector["zone"] = draw(st.sampled_from(("a", "b")))
    if selector:
        spec["nodeSelector"] = selector
    if draw(st.booleans()):
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": draw(st.sampled_from(("NoSchedule", "")))}]
    if draw(st.integers(0, 4)) == 0:
        term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec}


@PROPERTY
@given(pod=pods(), node_set=node_sets())
def test_first_fit_answers_what_fit_nodes_answers(pod: dict[str, Any], node_set: tuple[NodeState, ...]) -> None:
    needs = pod_needs(pod)
    assert first_fit(needs, node_set) == fit_nodes(needs, node_set)


@PROPERTY
@given(node_set=node_sets())
def test_summary_bounds_hold_every_plain_node(node_set: tuple[NodeState, ...]) -> None:
    """The bound of a GPU type is never below what one of its plain nodes has room for: pruning is safe."""
    summary = summarise(node_set)
    for node, plain, cpu, memory, gpus in summary.rows:
        if plain:
            bound = summary.bounds[node.labels.get(GPU_PRODUCT_LABEL, "")]
            assert bound[0] >= cpu and bound[1] >= memory and bound[2] >= gpus


def test_a_summary_is_computed_once_per_node_set() -> None:
    node_set = (NodeState(name="a", cpu_millis=1000, memory_bytes=GI),)
    assert summary_of(node_set) is summary_of(node_set)
    assert summary_of(tuple(node_set)) is summary_of(node_set)  # tuple() of a tuple is the same object
    assert summary_of((replace(node_set[0], cpu_millis_used=500),)) is not summary_of(node_set)


def _cluster(i: int, node_set: tuple[NodeState, ...], **state: Any) -> ClusterSnapshot:
    spec = ClusterSpec(
        name=f"c{i}",
        provider="sim",
        credentials=CredentialsRef(source="sim"),
        region=("eu-west-1", "us-east-1")[i % 2],
        labels={"tier": ("prod", "dev")[i % 2]},
        max_concurrent_pods=3,
    )
    return ClusterSnapshot(spec=spec, nodes=node_set, **state)


_STATE = {
    "health": st.sampled_from((ClusterHealth.HEALTHY, ClusterHealth.HEALTHY, ClusterHealth.UNREACHABLE)),
    "cordoned": st.booleans(),
    "running_pods": st.integers(0, 4),
}
cluster_states = st.fixed_dictionaries(_STATE)
state_changes = st.fixed_dictionaries({}, optional=_STATE)  # any one of them alone, or several


@st.composite
def placements(draw: Any) -> tuple[PodRequest, str, PlacementPolicy]:
    placement = PlacementSpec(
        regions=draw(st.sampled_from((frozenset(), frozenset({"eu-west-1"})))),
        preferences=draw(st.sampled_from(((), (Preference(weight=30, selector=parse_selector("tier=prod", field="t")),)))),
        tolerations=draw(st.sampled_from(((), (Toleration(key="x", operator="Exists"),)))),
    )
    request = PodRequest(request_id="r", pod=draw(pods()), placement=placement)
    policy = PlacementPolicy(strategy=draw(st.sampled_from(("least-loaded", "bin-packing"))))
    return request, draw(st.sampled_from(("", "c0", "c1"))), policy


@settings(max_examples=250, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(st.tuples(node_sets(roomy=True), cluster_states), min_size=1, max_size=4),
    changes=st.lists(st.tuples(st.integers(0, 3), st.none() | node_sets(roomy=True), state_changes), max_size=5),
    asked=st.lists(placements(), min_size=1, max_size=3),
)
def test_remembered_outcomes_give_the_decision_a_fresh_placement_gives(
    first: list[Any], changes: list[Any], asked: list[tuple[PodRequest, str, PlacementPolicy]]
) -> None:
    """Clusters change one at a time between placements of the same and other request shapes; a shared
    memo must give, each time, the decision (chosen cluster, every verdict, every reason) of a fresh one."""
    memo: OutcomeMemo[Any] = OutcomeMemo(shapes=2)  # small: shapes are also dropped and recomputed
    clusters = [_cluster(i, node_set, **state) for i, (node_set, state) in enumerate(first)]
    for step in range(len(changes) + 1):
        for request, previous, policy in asked:
            for before in ("", previous):  # the same shape with and without a previous cluster
                shared = place(request, clusters, policy, before, memo=memo)
                assert shared == place(request, clusters, policy, before, memo=OutcomeMemo())
        if step < len(changes):
            index, node_set, state = changes[step]
            index %= len(clusters)
            old = clusters[index]
            clusters[index] = replace(old, nodes=old.nodes if node_set is None else node_set, **state)
