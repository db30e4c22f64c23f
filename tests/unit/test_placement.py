"""The placement engine: hard filters with reasons, scoring, ordering and the decision's summary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gateway.domain import (
    GPU_PRODUCT_LABEL,
    ClusterHealth,
    ClusterSnapshot,
    ClusterSpec,
    CredentialsRef,
    NodeState,
    PlacementSpec,
    PodRequest,
    Preference,
    Taint,
    TaintEffect,
    Toleration,
    Verdict,
)
from gateway.errors import InvalidArgument, PreconditionViolation
from gateway.placement import PlacementPolicy, place, unsatisfiable_violations
from gateway.placement.selectors import parse_selector

GI = 2**30
A100 = "NVIDIA-A100-SXM4-40GB"


def node(
    name: str = "n1", *, cpu: int = 8000, mem: int = 32 * GI, gpus: int = 0, used: float = 0.0, **kw: Any
) -> NodeState:
    """A node with `used` share of its cpu and memory (and GPUs) taken."""
    return NodeState(
        name=name,
        cpu_millis=cpu,
        memory_bytes=mem,
        gpus=gpus,
        cpu_millis_used=int(cpu * used),
        memory_bytes_used=int(mem * used),
        gpus_used=int(gpus * used),
        **kw,
    )


def cluster(
    name: str,
    region: str = "eu-west-1",
    *,
    labels: dict[str, str] | None = None,
    nodes: tuple[NodeState, ...] = (),
    health: ClusterHealth = ClusterHealth.HEALTHY,
    **spec: Any,
) -> ClusterSnapshot:
    extra = {k: spec.pop(k) for k in ("cordoned", "cordon_reason", "running_pods") if k in spec}
    return ClusterSnapshot(
        spec=ClusterSpec(
            name=name,
            provider="sim",
            credentials=CredentialsRef(source="sim"),
            region=region,
            labels=labels or {},
            **spec,
        ),
        health=health,
        nodes=nodes or (node(),),
        **extra,
    )


def request(
    *, namespace: str = "", gpus: int = 0, cpu: str = "1", node_selector: dict[str, str] | None = None, **placement: Any
) -> PodRequest:
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": "1Gi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": gpus}
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "python:3.12", "resources": resources}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    metadata = {"namespace": namespace} if namespace else {}
    return PodRequest(
        request_id="r1",
        pod={"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec},
        placement=PlacementSpec(**placement),
    )


def sel(text: str) -> Any:
    return parse_selector(text, field="test")


def verdicts(decision: Any) -> dict[str, tuple[Verdict, str]]:
    return {v.cluster: (v.verdict, v.reason) for v in decision.verdicts}


LOCAL = (
    cluster(
        "local-eu-gpu",
        "eu-west-1",
        labels={"env": "local", "tier": "dev", "accelerator": "nvidia"},
        allowed_namespaces=frozenset({"default", "airflow"}),
        nodes=(node("eu-gpu", gpus=2, labels={GPU_PRODUCT_LABEL: A100}), node("eu-cpu", cpu=4000, mem=16 * GI)),
    ),
    cluster("local-eu-cpu", "eu-central-1", labels={"env": "local", "tier": "dev"}),
    cluster(
        "local-us-gpu",
        "us-east-1",
        labels={"env": "local", "tier": "dev", "accelerator": "nvidia"},
        nodes=(node("us-gpu", cpu=16000, mem=64 * GI, gpus=4, labels={GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}),),
    ),
)


def test_gpu_request_in_eu_lands_on_the_eu_gpu_cluster() -> None:
    decision = place(request(gpus=1, regions=frozenset({"eu-west-1"})), LOCAL)
    assert (decision.cluster, decision.region) == ("local-eu-gpu", "eu-west-1")
    assert decision.reason.startswith(
        "placed on local-eu-gpu (eu-west-1): 1 of 3 clusters eligible; fits on node eu-gpu; score "
    )
    assert [v.chosen for v in decision.verdicts] == [True, False, False]
    assert decision.candidates == (decision.verdicts[0],)


@pytest.mark.parametrize(
    ("req", "clusters", "cluster", "reason_fragment"),
    [
        # explicit names
        (request(clusters=frozenset({"b"})), (cluster("a"), cluster("b")), "a", "not among the requested clusters (b)"),
        # regions: data residency
        (
            request(regions=frozenset({"eu-west-1"})),
            (cluster("a", "us-east-1"),),
            "a",
            "region us-east-1 is outside the allowed regions (eu-west-1); data residency is never relaxed",
        ),
        # cluster selector
        (
            request(selector=sel("tier in (prod)")),
            (cluster("a", labels={"tier": "dev"}),),
            "a",
            "cluster selector: label tier=dev does not match tier in (prod)",
        ),
        (request(selector=sel("gpu")), (cluster("a"),), "a", "cluster selector: label gpu is not set but must exist"),
        # cluster taints
        (
            request(),
            (cluster("a", taints=(Taint(key="gpu", value="scarce"),)),),
            "a",
            "taint gpu=scarce:NoSelect is not tolerated",
        ),
        (
            request(tolerations=(Toleration(key="gpu", value="other"),)),
            (cluster("a", taints=(Taint(key="gpu", value="scarce"),)),),
            "a",
            "not tolerated",
        ),
        # namespace
        (request(namespace="ml"), (cluster("a"),), "a", "namespace ml is not allowed here (allowed: default)"),
        (
            request(namespace="ml"),
            (cluster("a", allowed_namespaces=frozenset({"airflow", "default"})),),
            "a",
            "(allowed: airflow, default)",
        ),
        # node fit that can never succeed
        (
            request(gpus=1),
            (cluster("a"),),
            "a",
            "no node can ever run the pod (cpu 1, memory 1Gi, 1 GPU): n1: needs 1 nvidia.com/gpu, node has 0 allocatable",
        ),
        (
            request(gpus=1, node_selector={GPU_PRODUCT_LABEL: "T4"}),
            (cluster("a", nodes=(node(gpus=2, labels={GPU_PRODUCT_LABEL: A100}),)),),
            "a",
            f"n1: node has GPU type {A100}, the pod selects GPU type T4",
        ),
    ],
)
def test_hard_constraints_reject_with_a_reason(
    req: PodRequest, clusters: tuple[ClusterSnapshot, ...], cluster: str, reason_fragment: str
) -> None:
    decision = place(req, clusters)
    verdict, reason = verdicts(decision)[cluster]
    assert verdict is Verdict.REJECTED
    assert reason_fragment in reason


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        (cluster("a", running_pods=5, max_concurrent_pods=5), "at its concurrency limit (5 of 5 gateway pods running)"),
        (cluster("a", running_pods=9, max_concurrent_pods=5), "at its concurrency limit (9 of 5 gateway pods running)"),
        (cluster("a", nodes=(node(used=1.0),)), "no node has room now: n1: needs 1 cpu, 0 of 8 free now"),
        (cluster("a", nodes=(node(ready=False),)), "no node has room now: n1: node is not ready"),
        (cluster("a", health=ClusterHealth.UNREACHABLE), "cluster is unreachable"),
        (cluster("a", health=ClusterHealth.UNAUTHORIZED), "cluster refuses the gateway's credentials (unauthorized)"),
        (cluster("a", cordoned=True, cordon_reason="maintenance"), "cluster is cordoned: maintenance"),
        (cluster("a", cordoned=True), "cluster is cordoned"),
        (replace(cluster("a"), nodes=()), "no node capacity known yet (no nodes reported)"),
    ],
)
def test_transient_conditions_are_no_capacity(snapshot: ClusterSnapshot, reason: str) -> None:
    decision = place(request(), (snapshot,))
    assert verdicts(decision)["a"] == (Verdict.NO_CAPACITY, reason)
    assert decision.cluster == ""
    assert decision.may_fit_later
    assert decision.reason == f"no cluster has room now: a: {reason}"


@pytest.mark.parametrize(
    ("snapshot", "verdict"),
    [
        (cluster("a", health=ClusterHealth.UNREACHABLE), Verdict.REJECTED),
        (cluster("a", cordoned=True), Verdict.REJECTED),
        (cluster("a", running_pods=5, max_concurrent_pods=5), Verdict.NO_CAPACITY),
    ],
)
def test_policy_can_reject_unavailable_clusters_instead_of_waiting(snapshot: ClusterSnapshot, verdict: Verdict) -> None:
    decision = place(request(), (snapshot,), PlacementPolicy(wait_on_unavailable=False))
    assert decision.verdicts[0].verdict is verdict


@pytest.mark.parametrize(
    "snapshot",
    [
        cluster("a", "us-east-1", health=ClusterHealth.UNREACHABLE),
        cluster("a", "us-east-1", cordoned=True),
        cluster("a", "us-east-1", running_pods=1, max_concurrent_pods=1),
        cluster("a", "us-east-1", nodes=(node(used=1.0),)),
    ],
)
def test_a_permanent_mismatch_outranks_a_transient_one(snapshot: ClusterSnapshot) -> None:
    decision = place(request(regions=frozenset({"eu-west-1"})), (snapshot,))
    assert decision.verdicts[0].verdict is Verdict.REJECTED
    assert "region us-east-1 is outside" in decision.verdicts[0].reason
    assert not decision.may_fit_later


def test_cordon_is_reported_before_health() -> None:
    decision = place(request(), (cluster("a", cordoned=True, health=ClusterHealth.UNREACHABLE),))
    assert decision.verdicts[0].reason == "cluster is cordoned"


def test_region_is_never_violated_even_when_it_alone_has_capacity() -> None:
    clusters = (
        cluster("eu-full", "eu-west-1", nodes=(node(gpus=2, used=1.0),)),
        cluster("us-free", "us-east-1", nodes=(node(gpus=8),), weight=1000),
    )
    decision = place(request(gpus=1, regions=frozenset({"eu-west-1"})), clusters, previous="us-free")
    assert decision.cluster == ""
    assert verdicts(decision) == {
        "eu-full": (Verdict.NO_CAPACITY, "no node has room now: n1: needs 1 nvidia.com/gpu, 0 of 2 free now"),
        "us-free": (
            Verdict.REJECTED,
            "region us-east-1 is outside the allowed regions (eu-west-1); data residency is never relaxed",
        ),
    }


def test_no_fit_ever_lists_each_cluster_as_a_precondition_violation() -> None:
    decision = place(request(gpus=1, regions=frozenset({"ap-south-1"})), LOCAL)
    assert decision.cluster == ""
    assert not decision.may_fit_later
    assert decision.reason.startswith(
        "no cluster satisfies the constraints: local-eu-cpu: region eu-central-1 is outside"
    )
    assert unsatisfiable_violations(decision) == [
        PreconditionViolation(type="PLACEMENT", subject=v.cluster, description=v.reason) for v in decision.verdicts
    ]
    assert [v.subject for v in unsatisfiable_violations(decision)] == ["local-eu-cpu", "local-eu-gpu", "local-us-gpu"]


def test_violations_stay_small_enough_for_grpc_trailers() -> None:
    clusters = tuple(cluster(f"us-{i:04}", "us-east-1") for i in range(1000)) + tuple(
        cluster(f"eu-{i}", running_pods=1, max_concurrent_pods=1) for i in range(2)
    )
    decision = place(request(regions=frozenset({"eu-west-1"})), clusters)
    violations = unsatisfiable_violations(decision)
    assert [v.subject for v in violations] == ["eu-0", "eu-1", *(f"us-{i:04}" for i in range(8)), "992 more clusters"]
    assert violations[-1].description == "992 rejected; ExplainPlacement lists every cluster with its reason"
    assert sum(len(v.subject) + len(v.description) for v in violations) < 4096
    assert len(decision.reason) < 400


def test_long_reasons_are_clipped_in_violations() -> None:
    nodes = tuple(node(f"node-with-a-rather-long-name-{i}") for i in range(5))
    decision = place(request(gpus=1), (cluster("a", nodes=nodes),))
    [violation] = unsatisfiable_violations(decision, max_chars=120)
    assert len(violation.description) == 120
    assert violation.description.endswith("...")
    assert decision.verdicts[0].reason.startswith(violation.description[:-3])


def test_violations_leave_out_eligible_clusters() -> None:
    decision = place(request(regions=frozenset({"eu-west-1"})), LOCAL)
    assert [v.subject for v in unsatisfiable_violations(decision)] == ["local-eu-cpu", "local-us-gpu"]


def test_no_cluster_registered() -> None:
    decision = place(request(clusters=frozenset({"x"})), ())
    assert decision == place(request(clusters=frozenset({"x"})), ())
    assert decision.reason == "no cluster is registered; requested cluster(s) not registered: x"


def test_unregistered_requested_cluster_is_named() -> None:
    decision = place(request(clusters=frozenset({"nope"})), (cluster("a"),))
    assert decision.reason.endswith("; requested cluster(s) not registered: nope")


def test_order_is_eligible_by_score_then_no_capacity_then_rejected_each_by_name() -> None:
    clusters = (
        cluster("z-rejected", "us-east-1"),
        cluster("b-full", nodes=(node(used=1.0),)),
        cluster("a-rejected", "us-east-1"),
        cluster("y-busy", nodes=(node(used=0.5),)),
        cluster("a-full", running_pods=1, max_concurrent_pods=1),
        cluster("x-idle", nodes=(node(used=0.0),)),
    )
    decision = place(request(regions=frozenset({"eu-west-1"})), clusters)
    assert [v.cluster for v in decision.verdicts] == [
        "x-idle",
        "y-busy",
        "a-full",
        "b-full",
        "a-rejected",
        "z-rejected",
    ]
    assert [v.verdict for v in decision.verdicts] == [Verdict.ELIGIBLE] * 2 + [Verdict.NO_CAPACITY] * 2 + [
        Verdict.REJECTED
    ] * 2
    assert decision.verdicts[0].score > decision.verdicts[1].score


@pytest.mark.parametrize(
    ("strategy", "winner"),
    [("least-loaded", "idle"), ("bin-packing", "busy")],
)
def test_capacity_strategy(strategy: str, winner: str) -> None:
    clusters = (cluster("busy", nodes=(node(used=0.7),)), cluster("idle", nodes=(node(used=0.1),)))
    decision = place(request(), clusters, PlacementPolicy(strategy=strategy))
    assert decision.cluster == winner
    assert f"({strategy})" in decision.verdicts[0].reason


def test_bin_packing_still_skips_a_cluster_without_room() -> None:
    clusters = (cluster("full", nodes=(node(used=1.0),)), cluster("idle"))
    assert place(request(), clusters, PlacementPolicy(strategy="bin-packing")).cluster == "idle"


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="least-loaded, bin-packing"):
        PlacementPolicy(strategy="random")


def test_ties_break_by_name() -> None:
    clusters = tuple(cluster(n) for n in ("c", "a", "b"))
    decision = place(request(), clusters)
    assert [v.cluster for v in decision.verdicts] == ["a", "b", "c"]
    assert len({v.score for v in decision.verdicts}) == 1
    assert decision.cluster == "a"


def test_placement_is_deterministic_whatever_the_input_order() -> None:
    a = place(request(), LOCAL)
    b = place(request(), tuple(reversed(LOCAL)))
    assert a == b


@pytest.mark.parametrize(
    ("preferences", "winner", "fragment"),
    [
        ((), "a-plain", "+ weight 10"),
        ((Preference(weight=60, selector=sel("tier=prod")),), "b-prod", "preferences 60 (1 of 1 matched)"),
        ((Preference(weight=5, selector=sel("tier=prod")),), "a-plain", "preferences 0 (0 of 1 matched)"),
        (
            (Preference(weight=30, selector=sel("tier=prod")), Preference(weight=70, selector=sel("ssd"))),
            "c-ssd",
            "preferences 70 (1 of 2 matched)",
        ),
        (
            (Preference(weight=30, selector=sel("tier=prod")), Preference(weight=30, selector=sel("tier,!ssd"))),
            "b-prod",
            "preferences 60 (2 of 2 matched)",
        ),
    ],
)
def test_weighted_preferences(preferences: tuple[Preference, ...], winner: str, fragment: str) -> None:
    """The idle cluster leads by 50 capacity points; preferences must outweigh that to win."""
    clusters = (
        cluster("a-plain", nodes=(node(used=0.0),)),
        cluster("b-prod", labels={"tier": "prod"}, nodes=(node(used=0.5),)),
        cluster("c-ssd", labels={"ssd": "true"}, nodes=(node(used=0.5),)),
    )
    decision = place(request(preferences=preferences), clusters)
    assert decision.cluster == winner
    assert fragment in decision.verdicts[0].reason


def test_cluster_weight_counts() -> None:
    clusters = (cluster("a", weight=100), cluster("b", weight=400))
    decision = place(request(), clusters)
    assert decision.cluster == "b"
    assert "weight 40" in decision.verdicts[0].reason


def test_stability_favours_the_previous_cluster() -> None:
    clusters = (cluster("a"), cluster("b"))
    assert place(request(), clusters).cluster == "a"
    decision = place(request(), clusters, previous="b")
    assert decision.cluster == "b"
    assert "stability 20 (previous cluster)" in decision.verdicts[0].reason


def test_stability_never_overrides_a_hard_constraint() -> None:
    clusters = (cluster("a"), cluster("b", "us-east-1"))
    assert place(request(regions=frozenset({"eu-west-1"})), clusters, previous="b").cluster == "a"


def test_prefer_no_select_taint_scores_down_and_can_be_tolerated() -> None:
    soft = (Taint(key="spot", effect=TaintEffect.PREFER_NO_SELECT),)
    clusters = (cluster("a", taints=soft), cluster("b", weight=50))
    decision = place(request(), clusters)
    assert decision.cluster == "b"
    assert "- 50 (untolerated spot:PreferNoSelect)" in verdicts(decision)["a"][1]
    tolerant = place(request(tolerations=(Toleration(key="spot", operator="Exists"),)), clusters)
    assert tolerant.cluster == "a"


def test_no_select_taint_tolerated() -> None:
    clusters = (cluster("a", taints=(Taint(key="gpu", value="scarce"),)),)
    assert place(request(tolerations=(Toleration(key="gpu", value="scarce"),)), clusters).cluster == "a"
    assert place(request(tolerations=(Toleration(operator="Exists"),)), clusters).cluster == "a"
    assert (
        place(
            request(tolerations=(Toleration(key="gpu", operator="Exists", effect="PreferNoSelect"),)), clusters
        ).cluster
        == ""
    )


@pytest.mark.parametrize(
    ("namespace", "allowed", "ok"),
    [("", {"default"}, True), ("airflow", {"*"}, True), ("x", frozenset(), False), ("default", frozenset(), True)],
)
def test_namespace(namespace: str, allowed: set[str], ok: bool) -> None:
    decision = place(request(namespace=namespace), (cluster("a", allowed_namespaces=frozenset(allowed)),))
    assert (decision.cluster == "a") is ok


def test_invalid_resources_are_invalid_argument() -> None:
    req = request(cpu="a lot")
    with pytest.raises(InvalidArgument) as caught:
        place(req, LOCAL)
    assert caught.value.violations[0].field == "pod.pod_json.spec.containers[0].resources.requests[cpu]"


def test_many_clusters_are_summarised_by_constraint() -> None:
    clusters = tuple(cluster(f"us-{i:02}", "us-east-1") for i in range(6)) + tuple(
        cluster(f"eu-{i:02}", running_pods=1, max_concurrent_pods=1) for i in range(3)
    )
    decision = place(request(regions=frozenset({"eu-west-1"})), clusters)
    assert decision.reason == (
        "no cluster has room now: 3 without room now (concurrency 3); 6 rejected (region 6); "
        "first: eu-00: at its concurrency limit (1 of 1 gateway pods running)"
    )
