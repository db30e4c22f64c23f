"""Pure scheduling logic: quantities, filters in kube-scheduler's order, FailedScheduling messages."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from gateway.sim.fit import (
    choose_node,
    fit_error_message,
    matches_node_selector,
    pod_requests,
    tolerates,
    usage_by_node,
)
from gateway.sim.quantity import QuantityError, parse_quantity, to_int, to_millis


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", Fraction(2)),
        ("0.1", Fraction(1, 10)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1.5Ki", Fraction(1536)),
        ("1e3", Fraction(1000)),
        ("1E-3", Fraction(1, 1000)),
        ("128M", Fraction(128 * 10**6)),
        ("100n", Fraction(1, 10**7)),
        (".5", Fraction(1, 2)),
        (3, Fraction(3)),
        (0.25, Fraction(1, 4)),
    ],
)
def test_parse_quantity(text: str | int | float, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5Gb", "1ki", "--1", True])
def test_parse_quantity_rejects_what_kubernetes_rejects(text: Any) -> None:
    with pytest.raises(QuantityError, match="quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(("text", "millis"), [("0.1", 100), ("1", 1000), ("250m", 250), ("1.0001", 1001)])
def test_cpu_rounds_up_to_millicores(text: str, millis: int) -> None:
    assert to_millis(text) == millis


def test_memory_rounds_up_to_bytes() -> None:
    assert to_int("1.5") == 2 and to_int("1Mi") == 2**20


def container(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": requests or {}, "limits": limits or {}}}


def test_pod_requests_sum_containers_max_init_add_overhead_and_default_to_limits() -> None:
    spec = {
        "containers": [container({"cpu": "500m"}), container(limits={"cpu": "1", "memory": "1Gi"})],
        "initContainers": [container({"cpu": "2"}), container({"memory": "512Mi"})],
        "overhead": {"memory": "1Mi"},
    }
    assert pod_requests(spec) == {"cpu": 2000, "memory": 2**30 + 2**20, "pods": 1}


def node(
    name: str,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    gpus: str = "",
) -> dict[str, Any]:
    alloc = {"cpu": "4", "memory": "16Gi", "pods": "110"} | ({"nvidia.com/gpu": gpus} if gpus else {})
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": alloc},
    }


def pod(**spec: Any) -> dict[str, Any]:
    spec.setdefault("containers", [container()])
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}


GPU = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, GPU, True),
        ({"key": "dedicated", "value": "gpu"}, GPU, True),
        ({"key": "dedicated", "value": "cpu"}, GPU, False),
        ({"key": "dedicated", "operator": "Exists"}, GPU, True),
        ({"operator": "Exists"}, GPU, True),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, GPU, False),
        ({"key": "other", "operator": "Exists"}, GPU, False),
    ],
)
def test_tolerates(toleration: dict[str, str], taint: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


LABELLED = node("n1", {"zone": "a", "gpus": "4"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, True),
        ({"nodeSelector": {"zone": "a"}}, True),
        ({"nodeSelector": {"zone": "b"}}, False),
        ({"affinity": affinity(expr("zone", "In", "a", "b"))}, True),
        ({"affinity": affinity(expr("zone", "NotIn", "a"))}, False),
        ({"affinity": affinity(expr("missing", "NotIn", "a"))}, True),
        ({"affinity": affinity(expr("zone", "Exists"))}, True),
        ({"affinity": affinity(expr("zone", "DoesNotExist"))}, False),
        ({"affinity": affinity(expr("gpus", "Gt", "2"))}, True),
        ({"affinity": affinity(expr("gpus", "Lt", "2"))}, False),
        ({"affinity": affinity(expr("zone", "Gt", "2"))}, False),
        ({"affinity": affinity(expr("zone", "In", "b"), expr("gpus", "Exists"))}, True),  # terms are ORed
        ({"affinity": affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})}, True),
        (
            {"affinity": affinity({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]})},
            False,
        ),
        ({"affinity": affinity({})}, False),  # an empty term matches nothing
        ({"nodeSelector": {"zone": "a"}, "affinity": affinity(expr("zone", "In", "b"))}, False),
    ],
)
def test_node_selector_and_required_affinity(spec: dict[str, Any], expected: bool) -> None:
    assert matches_node_selector(spec, LABELLED) is expected


CLUSTER = [
    node("gpu-1", {"nvidia.com/gpu.product": "A100"}, gpus="2"),
    node("gpu-2", {"nvidia.com/gpu.product": "H100"}, taints=[GPU], gpus="4"),
    node("cpu-1"),
]
VICTIMS = "No preemption victims found for incoming pod"
HOPELESS = "Preemption is not helpful for scheduling"


@pytest.mark.parametrize(
    ("spec", "usage", "expected"),
    [
        ({}, {}, "cpu-1"),  # least allocated; ties broken by name, tainted node excluded
        ({"containers": [container({"nvidia.com/gpu": "1"})]}, {}, "gpu-1"),
        (
            {
                "containers": [container({"nvidia.com/gpu": "1"})],
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            },
            {"gpu-1": {"nvidia.com/gpu": 2}},
            "gpu-2",
        ),
        ({"nodeSelector": {"nvidia.com/gpu.product": "A100"}}, {}, "gpu-1"),
        ({"containers": [container({"cpu": "3"})]}, {"cpu-1": {"cpu": 2000}}, "gpu-1"),
        (
            {"containers": [container({"nvidia.com/gpu": "3"})]},
            {},
            f"0/3 nodes are available: 1 node(s) had untolerated taint {{dedicated: gpu}}, 2 Insufficient nvidia.com/gpu. "
            f"preemption: 0/3 nodes are available: 1 {HOPELESS}, 2 {VICTIMS}..",
        ),
        (
            {"nodeSelector": {"disk": "ssd"}},
            {},
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
            "2 node(s) didn't match Pod's node affinity/selector. "
            f"preemption: 0/3 nodes are available: 3 {HOPELESS}..",
        ),
        (
            {"containers": [container({"cpu": "5", "memory": "20Gi"})], "tolerations": [{"operator": "Exists"}]},
            {},
            "0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory. "
            f"preemption: 0/3 nodes are available: 3 {VICTIMS}..",
        ),
        (
            {"tolerations": [{"operator": "Exists"}]},
            {"gpu-1": {"pods": 110}, "gpu-2": {"pods": 110}, "cpu-1": {"pods": 110}},
            f"0/3 nodes are available: 3 Too many pods. preemption: 0/3 nodes are available: 3 {VICTIMS}..",
        ),
        (
            {"containers": [container({"cpu": "lots"})]},
            {},
            "0/3 nodes are available: invalid resource request: quantity 'lots' does not match",
        ),
    ],
)
def test_choose_node(spec: dict[str, Any], usage: dict[str, dict[str, int]], expected: str) -> None:
    decision = choose_node(pod(**spec), CLUSTER, usage)
    if " " in expected:
        assert decision.node is None and decision.message.startswith(expected)
    else:
        assert decision.node == expected, decision.message


def test_unschedulable_node_unless_tolerated() -> None:
    cordoned = [node("n1", unschedulable=True)]
    assert choose_node(pod(), cordoned, {}).message.startswith("0/1 nodes are available: 1 node(s) were unschedulable.")
    tolerant = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert choose_node(tolerant, cordoned, {}).node == "n1"


def test_prefer_no_schedule_is_soft() -> None:
    soft = node("a-soft", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}])
    assert choose_node(pod(), [soft, node("b")], {}).node == "b"
    assert choose_node(pod(), [soft], {}).node == "a-soft"


def test_no_nodes_and_usage_ignores_terminated_pods() -> None:
    assert fit_error_message(0, []) == "no nodes available to schedule pods"
    running = {"spec": {"nodeName": "n", "containers": [container({"cpu": "1"})]}, "status": {"phase": "Running"}}
    done = {"spec": {"nodeName": "n", "containers": [container({"cpu": "1"})]}, "status": {"phase": "Succeeded"}}
    unbound = {"spec": {"containers": [container({"cpu": "1"})]}, "status": {"phase": "Pending"}}
    assert usage_by_node([running, done, unbound]) == {"n": {"cpu": 1000, "pods": 1}}


def test_preferred_node_affinity_outweighs_allocation() -> None:
    prefer_gpu = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": expr("nvidia.com/gpu.product", "In", "A100")},
                {"weight": 1, "preference": expr("nvidia.com/gpu.product", "DoesNotExist")},
            ]
        }
    }
    assert choose_node(pod(affinity=prefer_gpu), CLUSTER, {"gpu-1": {"cpu": 3000}}).node == "gpu-1"
    assert choose_node(pod(), CLUSTER, {"gpu-1": {"cpu": 3000}}).node == "cpu-1"
