"""Quantities through the real gRPC edge: what the API server would refuse is INVALID_ARGUMENT with its field
path, a JSON number keeps its decimal text (0.1 CPU is 100m, not 101m), and no quantity can freeze the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import LOCAL, eventually, gateway_settings, request_for, serving, sim_pod, violations

CPU_FIELD = "pod.pod_json.spec.containers[0].resources.requests[cpu]"


def manifest(cpu: Any) -> str:
    """A pod requesting `cpu`, spliced in as raw JSON text (so a number keeps exactly the digits written)."""
    base = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "quantity"},
        "spec": {"containers": [{"name": "base", "image": "python:3.12", "resources": {"requests": {"cpu": "@"}}}]},
    }
    return json.dumps(base).replace('"@"', cpu)


def creates(world: SimWorld) -> int:
    return sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values())


@pytest.mark.parametrize(
    "cpu",
    ['"\u0661\u0662"', '"1e2147483648"', '"12 cores"', '"."', '"1e"', '""', "true", '"0.5ki"'],
    ids=["arabic-indic-digits", "exponent-beyond-int32", "words", "no-digits", "bare-e", "empty", "bool", "ki"],
)
async def test_a_quantity_the_api_server_refuses_is_invalid_argument_with_its_field(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, cpu: str
) -> None:
    request = request_for(manifest(cpu))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    found = violations(caught.value)
    assert CPU_FIELD in found and "is not a quantity" in found[CPU_FIELD], found
    assert len(found[CPU_FIELD]) < 300  # the input is never echoed unbounded
    assert creates(world) == 0


async def test_a_huge_exponent_is_answered_at_once_as_a_request_no_node_can_hold(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    """Kubernetes caps quantities at 2^63-1; 10^10,000,000 is never built (it froze the loop for 21 s)."""
    for cpu in ('"1e10000000"', "1e10000000", '"1' + "0" * 200_000 + '"'):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request_for(manifest(cpu))), timeout=10)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value.details()
        assert "needs 9223372036854775807 cpu" in caught.value.details()  # saturated at 2^63-1
    assert creates(world) == 0


def tight_cluster_file(tmp_path: Path) -> Path:
    """clusters/local.yaml with local-eu-cpu's one node offering exactly 7700m, every node virtual."""
    document = yaml.safe_load(LOCAL.read_text())
    for entry in document["clusters"]:
        for node in entry["sim"]["nodes"]:
            node["runtime"] = "virtual"
            if entry["name"] == "local-eu-cpu":
                node["allocatable"]["cpu"] = "7700m"
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


async def test_a_json_number_is_read_from_its_decimal_text_not_through_a_float(tmp_path: Path) -> None:
    """7.7 as a float is 7.70000000000000017...: through a float it asked 7701m and fitted nowhere."""
    path = tight_cluster_file(tmp_path)
    async with SimWorld.from_file(path, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as world:
        config = gateway_settings(tmp_path, {"clusters": {"files": [str(path)]}})
        async with serving(config) as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            request = request_for(manifest("7.7"))
            request.placement.clusters.append("local-eu-cpu")
            request.lifecycle.on_finish = dispatch_pb2.ON_FINISH_ACTION_KEEP_POD
            await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request), timeout=20)  # old: FAILED_PRECONDITION
            pods = await eventually(lambda: world.clusters["local-eu-cpu"].store.list("pods", None)[0])
            assert len(pods) == 1
            sent = pods[0]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
            assert sent == "7.7"  # its exact text, never 7.7000000000000002
            name = pods[0]["metadata"]["name"]
            node = await eventually(lambda: ((sim_pod(world, "local-eu-cpu", name) or {}).get("spec") or {}).get("nodeName"))
            assert node == "eu-central-cpu-1"  # the simulator's scheduler agrees it fits


async def test_a_fractional_gpu_is_invalid_argument_before_any_pod_is_created(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    """The API server keeps extended resources whole; the gateway refuses 0.5 GPUs itself, with the field."""
    gpu = manifest('"1"').replace('"requests": {"cpu": "1"}', '"limits": {"nvidia.com/gpu": 0.5}')
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request_for(gpu)), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    field = "pod.pod_json.spec.containers[0].resources.limits[nvidia.com/gpu]"
    assert "must be an integer" in violations(caught.value).get(field, ""), violations(caught.value)
    assert creates(world) == 0
