"""Placement's fast paths choose exactly what the full path chooses, with the same reasons.

Two shortcuts make placement among many clusters cheap: node summaries (`first_fit` reads a cluster's
nodes as flat rows and bounds instead of running `fit_node` on each) and the outcome memo (a cluster
unchanged since the same request shape was placed keeps its verdict). Both must be invisible: these
properties compare them with the node-by-node `fit_nodes` and with a placement from a fresh memo.
"""

from __future__ import annotations

import random
from dataclasses import fields, replace
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
    PlacementDecision,
    PlacementSpec,
    PodRequest,
    Preference,
    Taint,
    TaintEffect,
    Toleration,
)
from gateway.placement import PlacementPolicy, place
from gateway.placement.engine import FLEET, is_candidate, place_fully
from gateway.placement.fast import FULL_UP_TO, STATE_FIELDS, FleetIndex
from gateway.placement.memo import OutcomeMemo
from gateway.placement.node_fit import Fit, fit_nodes, pod_needs
from gateway.placement.selectors import parse_selector
from gateway.placement.summary import first_fit, fits_now, summarise, summary_of

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
def node_sets(draw: Any, roomy: bool = False, most: int = 6) -> tuple[NodeState, ...]:
    count = draw(st.integers(1 if roomy else 0, most))
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
@given(pod=pods(), node_set=node_sets())
def test_fits_now_answers_whether_fit_nodes_says_fits(pod: dict[str, Any], node_set: tuple[NodeState, ...]) -> None:
    """The frontier of free shapes per GPU type (then the irregular nodes) tells exactly whether a node fits."""
    needs = pod_needs(pod)
    assert fits_now(needs, node_set) is (fit_nodes(needs, node_set).fit is Fit.FITS)


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


# --- the decision without the table (gateway/placement/fast.py) ---------------------------------------

NAMESPACES = (frozenset({"default"}), frozenset({"default", "ml"}), frozenset({"*"}))
CLUSTER_TAINTS = (
    (),
    (),
    (Taint(key="x"),),  # NoSelect
    (Taint(key="y", effect=TaintEffect.PREFER_NO_SELECT),),
    (Taint(key="x", value="v", effect=TaintEffect.PREFER_NO_SELECT), Taint(key="y", effect=TaintEffect.PREFER_NO_SELECT)),
)
HEALTH = (*[ClusterHealth.HEALTHY] * 5, ClusterHealth.UNKNOWN, ClusterHealth.UNREACHABLE, ClusterHealth.UNAUTHORIZED)


def fleet_cluster(rnd: random.Random, i: int) -> ClusterSnapshot:
    """Any cluster: region, labels, cluster taints, namespaces, weight, limit, health, cordon and nodes vary.

    Built from a `Random` that hypothesis drives (`st.randoms()`): drawing each of a few hundred values
    through hypothesis made one example cost ~0.5 s."""
    labels = {"tier": rnd.choice(("prod", "dev"))}
    if rnd.random() < 0.5:
        labels["team"] = rnd.choice(("t1", "t2"))
    spec = ClusterSpec(
        name=f"c{i:02}",
        provider="sim",
        credentials=CredentialsRef(source="sim"),
        region=rnd.choice(("eu-west-1", "us-east-1", "ap-south-1")),
        labels=labels,
        taints=rnd.choice(CLUSTER_TAINTS),
        allowed_namespaces=rnd.choice(NAMESPACES),
        max_concurrent_pods=rnd.choice((0, 0, 0, 3)),
        weight=rnd.choice((50, 100, 100, 150)),
    )
    roomy = rnd.random() < 0.85
    count = rnd.randint(1 if roomy else 0, 3)
    return ClusterSnapshot(
        spec=spec,
        nodes=tuple(random_node(rnd, f"n{j}", roomy and rnd.random() < 0.75) for j in range(count)),
        health=rnd.choice(HEALTH),
        cordoned=rnd.random() < 0.1,
        running_pods=rnd.randint(0, 4),
    )


def random_node(rnd: random.Random, name: str, roomy: bool) -> NodeState:
    """As `nodes()` draws them, from a `Random`."""
    gpus = rnd.choice((0, 0, 2, 8))
    cpu = rnd.choice((2000, 8000, 32000))
    labels = {}
    if gpu := rnd.choice(GPU_TYPES):
        labels[GPU_PRODUCT_LABEL] = gpu
    if rnd.random() < 0.5:
        labels["zone"] = rnd.choice(("a", "b"))
    taints = tuple(
        NodeTaint(key=rnd.choice(("dedicated", "gpu")), value=rnd.choice(("", "ml")), effect=rnd.choice(("NoSchedule", "NoExecute", "PreferNoSchedule")))
        for _ in range(0 if roomy else rnd.randint(0, 2))
    )
    return NodeState(
        name=name,
        labels=labels,
        taints=taints,
        ready=roomy or rnd.random() < 0.5,
        schedulable=roomy or rnd.random() < 0.5,
        cpu_millis=cpu,
        memory_bytes=rnd.choice((4 * GI, 32 * GI)),
        gpus=gpus,
        cpu_millis_used=rnd.randint(0, cpu // 2 if roomy else cpu + 1000),
        memory_bytes_used=rnd.choice((0, GI) if roomy else (0, GI, 4 * GI, 40 * GI)),
        gpus_used=rnd.randint(0, gpus // 2 if roomy else gpus + 1),
    )


@st.composite
def fleets(draw: Any) -> tuple[random.Random, list[ClusterSnapshot]]:
    rnd = draw(st.randoms(use_true_random=False))
    fleet: list[ClusterSnapshot] = []
    for i in range(draw(st.integers(0, 30))):
        if fleet and rnd.random() < 0.3:  # a twin of an earlier cluster: equal scores, the name decides
            twin = rnd.choice(fleet)
            fleet.append(replace(twin, spec=replace(twin.spec, name=f"c{i:02}")))
        else:
            fleet.append(fleet_cluster(rnd, i))
    return rnd, fleet


@st.composite
def modest_pods(draw: Any) -> dict[str, Any]:
    """Pods most random clusters have room for, so that many clusters are eligible and their order matters."""
    cpu = draw(st.sampled_from(("1m", "100m", "500m", "1", "4")))  # 1m, 1Mi: scores close to their bounds
    requests = {"cpu": cpu, "memory": draw(st.sampled_from(("1Mi", "256Mi", "1Gi", "8Gi")))}
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox", "resources": {"requests": requests}}]}
    if gpus := draw(st.sampled_from((0, 0, 0, 1, 2))):
        spec["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": gpus}
    selector = {}
    if draw(st.integers(0, 2)) == 0:
        selector[GPU_PRODUCT_LABEL] = draw(st.sampled_from(("A100", "H100")))
    if draw(st.integers(0, 5)) == 0:
        selector["zone"] = draw(st.sampled_from(("a", "b")))
    if selector:
        spec["nodeSelector"] = selector
    if draw(st.booleans()):
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if draw(st.integers(0, 7)) == 0:
        term = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec}


SELECTORS = ("", "", "", "tier=prod", "team in (t1)", "tier!=dev,team")


@st.composite
def constrained(draw: Any, names: int) -> tuple[PodRequest, str, PlacementPolicy]:
    """Any request: regions, cluster selector, named clusters, tolerations, preferences, namespace, pod."""
    rarely = st.integers(0, 5).map(lambda n: n == 0)  # constraints that leave few clusters, now and then
    regions = ("eu-west-1", "us-east-1", "ap-south-1")
    placement = PlacementSpec(
        regions=frozenset(draw(st.lists(st.sampled_from(regions), min_size=1, max_size=2)) if draw(rarely) else ()),
        selector=parse_selector(draw(st.sampled_from(SELECTORS)), field="t"),
        clusters=frozenset(f"c{i:02}" for i in draw(st.lists(st.integers(0, max(names, 1)), max_size=8))) if draw(rarely) else frozenset(),
        tolerations=draw(st.sampled_from(((), (Toleration(key="x", operator="Exists"),), (Toleration(key="y"),)))),
        preferences=draw(
            st.sampled_from(
                (
                    (),
                    (Preference(weight=30, selector=parse_selector("tier=prod", field="t")),),
                    (
                        Preference(weight=5, selector=parse_selector("team=t1", field="t")),
                        Preference(weight=40, selector=parse_selector("tier=dev", field="t")),
                    ),
                )
            )
        ),
    )
    pod = draw(modest_pods())
    if draw(st.booleans()):
        pod["metadata"] = {"namespace": draw(st.sampled_from(("default", "ml")))}
    policy = PlacementPolicy(
        strategy=draw(st.sampled_from(("least-loaded", "least-loaded", "bin-packing"))),
        weight_factor=draw(st.sampled_from((0.1, 0.37))),
        wait_on_unavailable=draw(st.booleans()),
    )
    previous = draw(st.sampled_from(("", "c00", "c01", "c07")))
    return PodRequest(request_id="r", pod=pod, placement=placement), previous, policy


def _same(fast: PlacementDecision, full: PlacementDecision) -> None:
    """The chosen cluster, the reason, the failover order and (built now) every verdict and reason."""
    assert (fast.cluster, fast.region, fast.reason) == (full.cluster, full.region, full.reason)
    assert fast.candidate_names == tuple(v.cluster for v in full.candidates)
    assert fast == full


FLEET_PROPERTY = settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@FLEET_PROPERTY
@given(data=st.data(), drawn=fleets())
def test_the_fast_path_decides_what_the_full_path_decides(data: Any, drawn: tuple[random.Random, list[ClusterSnapshot]]) -> None:
    """Random fleets and requests (regions, selectors, named clusters, taints, GPU types, namespaces,
    node taints and affinity, strategies): the same choice, reason, failover order and table. The index
    searches by bounds for every fleet (no shortcut for small ones) and follows the fleet as clusters
    change one or several at a time between placements (their free shapes laid out again at once, or
    judged one by one meanwhile)."""
    rnd, fleet = drawn
    index = FleetIndex(score_all_up_to=0, stale_up_to=rnd.choice((0, 2, 100)))
    for _ in range(6):
        request, previous, policy = data.draw(constrained(len(fleet)))
        _same(place(request, fleet, policy, previous, fleet=index), place_fully(request, fleet, policy, previous, memo=OutcomeMemo()))
        for i in rnd.sample(range(len(fleet)), min(len(fleet), rnd.randint(0, 5))):
            fleet[i] = fleet_cluster(rnd, i)


@FLEET_PROPERTY
@given(data=st.data(), drawn=fleets())
def test_a_deferred_table_is_the_one_of_the_moment_of_the_decision(data: Any, drawn: tuple[random.Random, list[ClusterSnapshot]]) -> None:
    """A decision's table and failover order, first read after the fleet changed and other requests were
    placed, are those of the fleet it was made on, not of the fleet when they are read."""
    rnd, fleet = drawn
    index, memo = FleetIndex(score_all_up_to=0), OutcomeMemo[Any]()
    request, previous, policy = data.draw(constrained(len(fleet)))
    before = list(fleet)
    decision = place(request, fleet, policy, previous, memo=memo, fleet=index)
    for i in rnd.sample(range(len(fleet)), min(len(fleet), rnd.randint(0, 4))):
        fleet[i] = fleet_cluster(rnd, i)
    other, _, _ = data.draw(constrained(len(fleet)))
    place(other, fleet, policy, previous, memo=memo, fleet=index).verdicts  # noqa: B018 (fills the memo anew)
    place(request, fleet, policy, previous, memo=memo, fleet=index).verdicts  # noqa: B018
    _same(decision, place_fully(request, before, policy, previous, memo=OutcomeMemo()))


@FLEET_PROPERTY
@given(data=st.data(), drawn=fleets())
def test_a_cluster_judged_alone_is_a_candidate_exactly_when_placing_makes_it_one(
    data: Any, drawn: tuple[random.Random, list[ClusterSnapshot]]
) -> None:
    """What the runner asks before creating a pod placed at its acceptance (`is_candidate`, one cluster judged)
    answers as membership in the failover order of a whole placement, by the index and by the full path, for
    every cluster of random fleets and requests, and for a name no cluster bears."""
    rnd, fleet = drawn
    for _ in range(3):
        request, previous, policy = data.draw(constrained(len(fleet)))
        full = place_fully(request, fleet, policy, previous, memo=OutcomeMemo()).candidate_names
        fast = place(request, fleet, policy, previous, fleet=FleetIndex(score_all_up_to=0)).candidate_names
        for name in [*(s.spec.name for s in fleet), "absent"]:
            assert is_candidate(request, fleet, name, policy) == (name in full) == (name in fast), name
        for i in rnd.sample(range(len(fleet)), min(len(fleet), rnd.randint(0, 5))):
            fleet[i] = fleet_cluster(rnd, i)


def test_a_name_two_clusters_bear_is_no_candidate_judged_alone() -> None:
    """The runner then places in full (`test_two_clusters_of_one_name_are_placed_by_the_full_path`)."""
    node = (NodeState(name="n", cpu_millis=4000, memory_bytes=8 * GI),)
    twins = [_cluster(0, node, health=ClusterHealth.HEALTHY), _cluster(0, node, health=ClusterHealth.HEALTHY)]
    request = PodRequest(request_id="r", pod={"spec": {"containers": [{"name": "m", "image": "x"}]}})
    assert is_candidate(request, twins[:1], "c0") and not is_candidate(request, twins, "c0")


def test_the_index_compares_every_field_of_a_snapshot() -> None:
    """A snapshot field the index did not compare would let it serve a changed cluster from stale facts."""
    assert {f.name for f in fields(ClusterSnapshot)} == set(STATE_FIELDS)


def test_two_clusters_of_one_name_are_placed_by_the_full_path() -> None:
    """The index keys clusters by name; a list naming one twice (never the registry's) is judged one by one."""
    node = (NodeState(name="n", cpu_millis=4000, memory_bytes=8 * GI),)
    twins = [_cluster(0, node, health=ClusterHealth.HEALTHY), _cluster(0, node, health=ClusterHealth.HEALTHY)]
    request = PodRequest(request_id="r", pod={"spec": {"containers": [{"name": "m", "image": "x"}]}})
    decision = place(request, twins, fleet=FleetIndex())
    assert decision == place_fully(request, twins, memo=OutcomeMemo())
    assert "_table" not in decision.__dict__ and decision.cluster == "c0"


def test_the_process_index_leaves_a_small_fleet_to_the_full_path() -> None:
    """Up to FULL_UP_TO clusters the full path with the memo is cheaper than keeping the index, and its
    table is stored anyway: the decision comes with its table built; a larger fleet is ranked by the index."""
    node = (NodeState(name="n", cpu_millis=4000, memory_bytes=8 * GI),)
    fleet = [_cluster(i, node, health=ClusterHealth.HEALTHY) for i in range(FULL_UP_TO + 1)]
    request = PodRequest(request_id="r", pod={"spec": {"containers": [{"name": "m", "image": "x"}]}})
    small = place(request, fleet[:FULL_UP_TO], fleet=FLEET)
    assert "_table" not in small.__dict__ and "verdicts" in small.__dict__  # judged whole, at once
    assert small == place_fully(request, fleet[:FULL_UP_TO], memo=OutcomeMemo())
    large = place(request, fleet, fleet=FLEET)
    assert "_table" in large.__dict__  # ranked by the index, the table deferred
    _same(large, place_fully(request, fleet, memo=OutcomeMemo()))
