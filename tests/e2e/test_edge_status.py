"""Hostile input at the gRPC edge (issue 12): a refusal always reaches the client, and enums are never guessed.

A status carrying thousands of violations, or echoing a megabyte of input, exceeded the client's metadata
limit, so the client saw RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT; an unknown enum value was
silently read as a default (XCom mode 99 as AUTO, ListPods phase 99 as no filter at all).
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
import pytest

from gateway._proto.podgate.v1 import (
    clusters_pb2,
    clusters_pb2_grpc,
    common_pb2,
    credentials_pb2,
    credentials_pb2_grpc,
    dispatch_pb2,
    dispatch_pb2_grpc,
)
from gateway.app import Gateway
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import violations
from tests.e2e.edge_common import MANIFEST, no_pods, refused, request

# --- bounded answers -------------------------------------------------------------------------------


def bad_expressions(n: int) -> common_pb2.Placement:
    bad = [common_pb2.LabelSelectorRequirement(key=f"k{i}", operator="Bogus", values=["v"]) for i in range(n)]
    return common_pb2.Placement(cluster_selector=common_pb2.LabelSelector(match_expressions=bad))


def zero_weights(n: int) -> common_pb2.Placement:
    selector = common_pb2.LabelSelector(match_labels={"tier": "dev"})
    return common_pb2.Placement(preferences=[common_pb2.Preference(weight=0, selector=selector) for _ in range(n)])


@pytest.mark.parametrize(
    "pod",
    [
        pytest.param(request(json.dumps(MANIFEST), placement=bad_expressions(3000)), id="3000-bad-expressions"),
        pytest.param(request(json.dumps(MANIFEST), placement=zero_weights(3000)), id="3000-zero-weights"),
        pytest.param(
            request(json.dumps(MANIFEST), placement=common_pb2.Placement(clusters=["c" * (1 << 20)])),
            id="1MiB-cluster-name",
        ),
        pytest.param(
            request(json.dumps(MANIFEST), placement=common_pb2.Placement(regions=["é" * 300_000])),
            id="non-ascii-region",
        ),
    ],
)
async def test_a_long_list_of_violations_reaches_the_client(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, pod: dispatch_pb2.PodRequest
) -> None:
    error = await refused(stub.SubmitPod, dispatch_pb2.SubmitPodRequest(pod=pod))
    found = violations(error)
    assert found and len(found) <= 31
    many = len(pod.placement.preferences) + len(pod.placement.cluster_selector.match_expressions)
    if many:
        assert found["..."].startswith("and ") and found["..."].endswith(" more")
    assert all(len(f) <= 300 and len(d) <= 500 for f, d in found.items())
    assert no_pods(world)


async def test_a_huge_cluster_name_is_not_echoed_back(cluster_stub: clusters_pb2_grpc.ClusterServiceStub) -> None:
    cluster = clusters_pb2.Cluster(name="n" * (1 << 20), provider="sim", region="r")
    error = await refused(cluster_stub.RegisterCluster, clusters_pb2.RegisterClusterRequest(cluster=cluster))
    assert "n" * 2000 not in (error.details() or "")


# --- enums -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [99, -7, dispatch_pb2.POD_PHASE_UNSPECIFIED])
async def test_list_pods_refuses_an_unknown_or_unspecified_phase(
    stub: dispatch_pb2_grpc.DispatchServiceStub, phase: int
) -> None:
    error = await refused(
        stub.ListPods, dispatch_pb2.ListPodsRequest(phases=[dispatch_pb2.POD_PHASE_RUNNING, phase])
    )
    assert set(violations(error)) == {"phases[1]"}


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"xcom": dispatch_pb2.XcomOptions(mode=99)}, id="xcom-99"),
        pytest.param({"xcom": dispatch_pb2.XcomOptions(mode=-7)}, id="xcom-minus-7"),
        pytest.param({"logs": dispatch_pb2.LogOptions(selection=42)}, id="logs-42"),
        pytest.param({"lifecycle": dispatch_pb2.LifecycleOptions(on_finish=9)}, id="on-finish-9"),
        pytest.param({"lifecycle": dispatch_pb2.LifecycleOptions(on_disconnect=-1)}, id="on-disconnect-minus-1"),
    ],
)
async def test_an_unknown_enum_value_in_a_pod_request_is_refused(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, extra: dict[str, Any]
) -> None:
    pod = request(json.dumps(MANIFEST), **extra)
    await refused(stub.ExplainPlacement, dispatch_pb2.ExplainPlacementRequest(pod=pod))
    await refused(stub.SubmitPod, dispatch_pb2.SubmitPodRequest(pod=pod))
    assert no_pods(world)


async def test_an_unknown_kubeconfig_access_is_refused(gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = credentials_pb2_grpc.CredentialsServiceStub(channel)
        message = credentials_pb2.IssueKubeconfigRequest(cluster="local-eu-cpu", namespace="default", access=5)
        error = await refused(stub.IssueKubeconfig, message)
    assert set(violations(error)) == {"access"}




AUDITED_ENUMS = {
    "PodRequest.xcom.mode",  # UNSPECIFIED documented: DISABLED without options, AUTO with them
    "PodRequest.logs.selection",  # UNSPECIFIED documented as MAIN, the default
    "PodRequest.lifecycle.on_finish",  # UNSPECIFIED documented as DELETE_POD, the default
    "PodRequest.lifecycle.on_disconnect",  # UNSPECIFIED documented as KEEP_RUNNING, the default
    "ListPodsRequest.phases",  # UNSPECIFIED refused: it is no phase
    "IssueKubeconfigRequest.access",  # UNSPECIFIED documented as VIEW
}


def enum_fields(descriptor: Any, path: str, seen: frozenset[str] = frozenset()) -> set[str]:
    out: set[str] = set()
    for field in descriptor.fields:
        if field.enum_type is not None:
            out.add(f"{path}.{field.name}")
        elif field.message_type is not None and field.message_type.full_name not in seen:
            name = field.message_type.name if field.message_type.full_name.startswith("podgate.") else ""
            if name:
                out |= enum_fields(field.message_type, f"{path}.{field.name}", seen | {descriptor.full_name})
    return out


def test_every_enum_a_request_can_carry_has_been_audited() -> None:
    """A new enum field in a request must be added here once its servicer refuses unknown values."""
    found: set[str] = set()
    for module in (dispatch_pb2, clusters_pb2, credentials_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                for path in enum_fields(method.input_type, method.input_type.name):
                    found.add(re.sub(r"^(Submit|Run|ExplainPlacement)\w*Request\.pod\.", "PodRequest.", path))
    assert found == AUDITED_ENUMS


async def test_a_refused_submission_is_audited_without_the_megabyte_it_quoted(
    stub: dispatch_pb2_grpc.DispatchServiceStub, gateway: Gateway
) -> None:
    pod = request(json.dumps(MANIFEST), placement=common_pb2.Placement(clusters=["c" * (1 << 20)]))
    await refused(stub.SubmitPod, dispatch_pb2.SubmitPodRequest(pod=pod))
    entries, _ = await gateway.store.list_audit(action="pod.submit")
    [entry] = [e for e in entries if e.record.get("request_id") == pod.request_id]
    assert entry.record["code"] == "INVALID_ARGUMENT"
    assert 0 < len(entry.record["message"]) <= 1100
