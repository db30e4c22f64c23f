"""Quantities, effective pod requests and the node fit check."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from gateway.domain import GPU_PRODUCT_LABEL, NodeState, NodeTaint
from gateway.errors import InvalidArgument
from gateway.placement.node_fit import Fit, PodNeeds, fit_node, fit_nodes, pod_needs
from gateway.placement.quantity import format_bytes, parse_quantity, to_millis

GI = 2**30
A100 = "NVIDIA-A100-SXM4-40GB"
H100 = "NVIDIA-H100-80GB-HBM3"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("0.5", Fraction(1, 2)),
        (".5", Fraction(1, 2)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1Ki", Fraction(1024)),
        ("2k", Fraction(2000)),
        ("1M", Fraction(10**6)),
        ("1G", Fraction(10**9)),
        ("1e3", Fraction(1000)),
        ("1E-3", Fraction(1, 1000)),
        ("100n", Fraction(1, 10**7)),
        ("10u", Fraction(1, 10**5)),
        ("+2", Fraction(2)),
        ("-1", Fraction(-1)),
        (3, Fraction(3)),
        (0.25, Fraction(1, 4)),
    ],
)
def test_parse_quantity(raw: str | int | float, expected: Fraction) -> None:
    assert parse_quantity(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "1Gb", "1.2.3", "1 Gi", "Gi", "1ii", "0x10", True, float("inf")])
def test_parse_quantity_rejects(raw: Any) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(raw)


@pytest.mark.parametrize(
    ("n", "text"), [(512, "512"), (1024, "1Ki"), (GI, "1Gi"), (3 * 2**29, "1.5Gi"), (2**40, "1Ti")]
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_cpu_rounds_up_to_a_millicore() -> None:
    assert to_millis(parse_quantity("0.0001")) == 1


def container(
    name: str = "main", requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "busybox", "resources": resources, **extra}


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": list(containers), "initContainers": list(init), **spec},
    }


@pytest.mark.parametrize(
    ("manifest", "cpu", "memory", "gpus"),
    [
        (pod(container()), 0, 0, 0),
        (pod(container(requests={"cpu": "500m", "memory": "1Gi"})), 500, GI, 0),
        (pod(container(limits={"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": 1})), 2000, 2 * GI, 1),
        (pod(container(requests={"cpu": "1"}, limits={"cpu": "2", "memory": "1Gi"})), 1000, GI, 0),
        (pod(container(requests={"cpu": "1"}), container("b", requests={"cpu": "250m", "memory": "1Gi"})), 1250, GI, 0),
        # a regular init container larger than the app containers sets the request
        (pod(container(requests={"cpu": "1"}), init=(container("init", requests={"cpu": "3"}),)), 3000, 0, 0),
        # init containers run one at a time: their max counts, not their sum
        (
            pod(
                container(requests={"cpu": "1"}),
                init=(container("i1", requests={"cpu": "2"}), container("i2", requests={"cpu": "2"})),
            ),
            2000,
            0,
            0,
        ),
        # a sidecar (restartable init container) adds to the app containers and to later init containers
        (
            pod(
                container(requests={"cpu": "1"}),
                init=(
                    container("side", requests={"cpu": "500m"}, restartPolicy="Always"),
                    container("i", requests={"cpu": "1"}),
                ),
            ),
            1500,
            0,
            0,
        ),
        (
            pod(
                container(requests={"cpu": "100m"}),
                init=(
                    container("side", requests={"cpu": "500m"}, restartPolicy="Always"),
                    container("big", requests={"cpu": "2"}),
                ),
            ),
            2500,
            0,
            0,
        ),
        (pod(container(requests={"cpu": "1"}), overhead={"cpu": "250m", "memory": "128Mi"}), 1250, 128 * 2**20, 0),
        (pod(container(limits={"nvidia.com/gpu": "2"}), init=(container("i", limits={"nvidia.com/gpu": 1}),)), 0, 0, 2),
    ],
)
def test_effective_requests(manifest: dict[str, Any], cpu: int, memory: int, gpus: int) -> None:
    needs = pod_needs(manifest)
    assert (needs.cpu_millis, needs.memory_bytes, needs.gpus) == (cpu, memory, gpus)


@pytest.mark.parametrize(
    ("manifest", "field", "fragment"),
    [
        (
            pod(container(requests={"cpu": "lots"})),
            "pod.pod_json.spec.containers[0].resources.requests[cpu]",
            "'lots' is not a quantity",
        ),
        (
            pod(container(), container("b", limits={"memory": "1GB"})),
            "pod.pod_json.spec.containers[1].resources.limits[memory]",
            "not a quantity",
        ),
        (
            pod(container(), init=(container("i", requests={"cpu": "-1"}),)),
            "pod.pod_json.spec.initContainers[0].resources.requests[cpu]",
            "must not be negative",
        ),
        (
            pod(container(requests={"cpu": "-0." + "0" * 100_000 + "1"})),
            "pod.pod_json.spec.containers[0].resources.requests[cpu]",
            "must not be negative, got '-0.0000000000000000000000000000000000000...'",  # clipped
        ),
        # GPUs are an extended resource: whole, and requested only at an equal limit (ValidateResourceRequirements)
        (
            pod(container(limits={"nvidia.com/gpu": "0.5"})),
            "pod.pod_json.spec.containers[0].resources.limits[nvidia.com/gpu]",
            "must be an integer, got '0.5'",
        ),
        (
            pod(container(requests={"nvidia.com/gpu": "1"})),
            "pod.pod_json.spec.containers[0].resources.limits[nvidia.com/gpu]",
            "required with a GPU request",
        ),
        (
            pod(container(requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "2"})),
            "pod.pod_json.spec.containers[0].resources.requests[nvidia.com/gpu]",
            "must equal the nvidia.com/gpu limit",
        ),
        (pod(container(), nodeSelector={"a": 1}), "pod.pod_json.spec.nodeSelector", "values must be strings"),
        (
            pod(container(), overhead={"cpu": "x"}),
            "pod.pod_json.spec.overhead[cpu]",
            "'x' is not a quantity",
        ),
        (
            pod(
                container(),
                affinity={
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]
                        }
                    }
                },
            ),
            "pod.pod_json.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions.match_expressions[0].operator",
            "unknown operator 'Near'",
        ),
        (
            pod(
                container(),
                affinity={
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchFields": [{"key": "spec.x", "operator": "In", "values": ["a"]}]}
                            ]
                        }
                    }
                },
            ),
            "pod.pod_json.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key",
            "only metadata.name is supported",
        ),
    ],
)
def test_pod_needs_rejects_bad_manifests(manifest: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        pod_needs(manifest)
    assert caught.value.violations[0].field == field
    assert fragment in caught.value.violations[0].description


def gpu_node(**kw: Any) -> NodeState:
    base: dict[str, Any] = {
        "name": "gpu-1",
        "labels": {GPU_PRODUCT_LABEL: A100, "zone": "a", "cores": "64"},
        "cpu_millis": 8000,
        "memory_bytes": 32 * GI,
        "gpus": 2,
    }
    return NodeState(**{**base, **kw})


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": op, "values": list(values)}


GPU1 = container(limits={"nvidia.com/gpu": 1})
TAINTED = (NodeTaint(key="dedicated", value="gpu", effect="NoSchedule"),)


@pytest.mark.parametrize(
    ("manifest", "node", "fit", "reason"),
    [
        (pod(container(requests={"cpu": "1"})), gpu_node(), Fit.FITS, "fits"),
        (pod(GPU1), gpu_node(), Fit.FITS, "fits"),
        (pod(GPU1, nodeSelector={GPU_PRODUCT_LABEL: A100}), gpu_node(), Fit.FITS, "fits"),
        (
            pod(GPU1, nodeSelector={GPU_PRODUCT_LABEL: H100}),
            gpu_node(),
            Fit.NEVER,
            f"node has GPU type {A100}, the pod selects GPU type {H100}",
        ),
        (
            pod(GPU1, nodeSelector={GPU_PRODUCT_LABEL: H100}),
            gpu_node(labels={}),
            Fit.NEVER,
            f"node has no GPU type label, the pod selects GPU type {H100}",
        ),
        (
            pod(container(), nodeSelector={"zone": "b"}),
            gpu_node(),
            Fit.NEVER,
            "nodeSelector zone=b does not match (node has zone=a)",
        ),
        (
            pod(container(), nodeSelector={"disk": "ssd"}),
            gpu_node(),
            Fit.NEVER,
            "nodeSelector disk=ssd does not match (node has no label disk)",
        ),
        (
            pod(container(limits={"nvidia.com/gpu": 4})),
            gpu_node(),
            Fit.NEVER,
            "needs 4 nvidia.com/gpu, node has 2 allocatable",
        ),
        (pod(container(requests={"cpu": "16"})), gpu_node(), Fit.NEVER, "needs 16 cpu, node has 8 allocatable"),
        (
            pod(container(requests={"memory": "64Gi"})),
            gpu_node(),
            Fit.NEVER,
            "needs 64Gi memory, node has 32Gi allocatable",
        ),
        (pod(GPU1), gpu_node(gpus_used=2), Fit.LATER, "needs 1 nvidia.com/gpu, 0 of 2 free now"),
        (
            pod(container(requests={"cpu": "500m"})),
            gpu_node(cpu_millis_used=7800),
            Fit.LATER,
            "needs 500m cpu, 200m of 8 free now",
        ),
        (
            pod(container(requests={"memory": "1Gi"})),
            gpu_node(memory_bytes_used=32 * GI),
            Fit.LATER,
            "needs 1Gi memory, 0 of 32Gi free now",
        ),
        (pod(container()), gpu_node(ready=False), Fit.LATER, "node is not ready"),
        (pod(container()), gpu_node(schedulable=False), Fit.LATER, "node is cordoned (unschedulable)"),
        # a static mismatch wins over a transient one
        (pod(container(limits={"nvidia.com/gpu": 4})), gpu_node(ready=False), Fit.NEVER, "needs 4 nvidia.com/gpu"),
        # taints
        (pod(GPU1), gpu_node(taints=TAINTED), Fit.NEVER, "taint dedicated=gpu:NoSchedule is not tolerated"),
        (
            pod(GPU1),
            gpu_node(taints=(NodeTaint(key="evict", effect="NoExecute"),)),
            Fit.NEVER,
            "taint evict:NoExecute is not tolerated",
        ),
        (pod(GPU1), gpu_node(taints=(NodeTaint(key="soft", effect="PreferNoSchedule"),)), Fit.FITS, "fits"),
        (
            pod(GPU1, tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
            gpu_node(taints=TAINTED),
            Fit.FITS,
            "fits",
        ),
        (pod(GPU1, tolerations=[{"key": "dedicated", "value": "gpu"}]), gpu_node(taints=TAINTED), Fit.FITS, "fits"),
        (
            pod(GPU1, tolerations=[{"key": "dedicated", "operator": "Exists"}]),
            gpu_node(taints=TAINTED),
            Fit.FITS,
            "fits",
        ),
        (pod(GPU1, tolerations=[{"operator": "Exists"}]), gpu_node(taints=TAINTED), Fit.FITS, "fits"),
        (
            pod(GPU1, tolerations=[{"key": "dedicated", "value": "cpu"}]),
            gpu_node(taints=TAINTED),
            Fit.NEVER,
            "not tolerated",
        ),
        (
            pod(GPU1, tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
            gpu_node(taints=TAINTED),
            Fit.NEVER,
            "not tolerated",
        ),
        # required node affinity: terms ORed, expressions ANDed
        (
            pod(GPU1, affinity=affinity({"matchExpressions": [expr(GPU_PRODUCT_LABEL, "In", A100, H100)]})),
            gpu_node(),
            Fit.FITS,
            "fits",
        ),
        (
            pod(GPU1, affinity=affinity({"matchExpressions": [expr(GPU_PRODUCT_LABEL, "In", H100)]})),
            gpu_node(),
            Fit.NEVER,
            f"required node affinity: label {GPU_PRODUCT_LABEL}={A100} does not match {GPU_PRODUCT_LABEL} in ({H100})",
        ),
        (
            pod(GPU1, affinity=affinity({"matchExpressions": [expr("zone", "In", "a"), expr("cores", "Gt", "32")]})),
            gpu_node(),
            Fit.FITS,
            "fits",
        ),
        (
            pod(GPU1, affinity=affinity({"matchExpressions": [expr("zone", "In", "a"), expr("cores", "Lt", "32")]})),
            gpu_node(),
            Fit.NEVER,
            "label cores=64 does not match cores Lt 32",
        ),
        (
            pod(
                GPU1,
                affinity=affinity(
                    {"matchExpressions": [expr("zone", "In", "b")]}, {"matchExpressions": [expr("zone", "NotIn", "c")]}
                ),
            ),
            gpu_node(),
            Fit.FITS,
            "fits",
        ),
        (
            pod(
                GPU1,
                affinity=affinity(
                    {"matchExpressions": [expr("zone", "In", "b")]}, {"matchExpressions": [expr("legacy", "Exists")]}
                ),
            ),
            gpu_node(),
            Fit.NEVER,
            "none of 2 nodeSelectorTerms match (first: label zone=a does not match zone in (b))",
        ),
        (
            pod(GPU1, affinity=affinity({"matchExpressions": [expr("legacy", "DoesNotExist")]})),
            gpu_node(),
            Fit.FITS,
            "fits",
        ),
        (
            pod(GPU1, affinity=affinity({"matchFields": [expr("metadata.name", "In", "gpu-1")]})),
            gpu_node(),
            Fit.FITS,
            "fits",
        ),
        (
            pod(GPU1, affinity=affinity({"matchFields": [expr("metadata.name", "NotIn", "gpu-1")]})),
            gpu_node(),
            Fit.NEVER,
            "label metadata.name=gpu-1 does not match",
        ),
        (pod(GPU1, affinity=affinity({})), gpu_node(), Fit.NEVER, "empty term"),
    ],
)
def test_fit_node(manifest: dict[str, Any], node: NodeState, fit: Fit, reason: str) -> None:
    result = fit_node(pod_needs(manifest), node)
    assert result.fit is fit
    assert reason in result.reason


CPU_NODE = NodeState(name="cpu-1", cpu_millis=4000, memory_bytes=16 * GI)


@pytest.mark.parametrize(
    ("nodes", "fit", "reason"),
    [
        ((CPU_NODE, gpu_node()), Fit.FITS, "fits on node gpu-1"),
        (
            (CPU_NODE, gpu_node(gpus_used=2)),
            Fit.LATER,
            "no node has room now: gpu-1: needs 1 nvidia.com/gpu, 0 of 2 free now",
        ),
        (
            (CPU_NODE,),
            Fit.NEVER,
            "no node can ever run the pod (cpu 0, memory 0, 1 GPU): cpu-1: needs 1 nvidia.com/gpu, node has 0 allocatable",
        ),
        ((), Fit.LATER, "no node capacity known yet"),
        (
            tuple(NodeState(name=f"n{i}") for i in range(5)),
            Fit.NEVER,
            "n0: needs 1 nvidia.com/gpu, node has 0 allocatable; n1: needs 1 nvidia.com/gpu, node has 0 allocatable; n2: needs 1 nvidia.com/gpu, node has 0 allocatable; and 2 more node(s)",
        ),
    ],
)
def test_fit_nodes_summarises_a_cluster(nodes: tuple[NodeState, ...], fit: Fit, reason: str) -> None:
    result = fit_nodes(pod_needs(pod(GPU1)), nodes)
    assert result.fit is fit
    assert reason in result.reason


def test_gpu_type_shows_in_description() -> None:
    needs = pod_needs(pod(GPU1, nodeSelector={GPU_PRODUCT_LABEL: A100}))
    assert needs == PodNeeds(gpus=1, node_selector={GPU_PRODUCT_LABEL: A100})
    assert needs.describe() == f"cpu 0, memory 0, 1 {A100}"
