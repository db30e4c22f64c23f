"""The simulated API server checks quantities as kube-apiserver does: 400 when one does not decode,
422 for a negative value or a request above its limit; a huge exponent costs nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.fixtures_sim import SimThread, kube_client


def pod(name: str, *, requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None, **spec: Any) -> dict:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    container = {"name": "c", "image": "busybox", "command": ["true"], "resources": resources}
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


@pytest.fixture
def core(sim_thread_api_only: SimThread) -> Iterator[client.CoreV1Api]:
    with kube_client(sim_thread_api_only.clusters["local-eu-cpu"]) as api:
        yield client.CoreV1Api(api)


@pytest.mark.parametrize("cpu", ["\u0661\u0662", "12 cores", ".", "1e", "1e2147483648", "0.5ki", ""])
def test_an_undecodable_quantity_is_a_400_naming_the_pattern(core: client.CoreV1Api, cpu: str) -> None:
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod("default", pod("bad", requests={"cpu": cpu}))
    assert refused.value.status == 400
    assert "quantities must match the regular expression" in refused.value.body
    assert core.list_namespaced_pod("default").items == []


def test_negative_quantities_and_requests_above_limits_are_422_with_field_paths(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(
            "default", pod("bad", requests={"cpu": "-1", "memory": "2Gi"}, limits={"memory": "1Gi"}, overhead={"cpu": "-5m"})
        )
    assert refused.value.status == 422
    body = refused.value.body
    assert "spec.containers[0].resources.requests[cpu]" in body and "must be greater than or equal to 0" in body
    assert "spec.overhead[cpu]" in body
    assert "spec.containers[0].resources.requests" in body and "must be less than or equal to memory limit of 1Gi" in body


@pytest.mark.parametrize(
    ("requests", "limits", "field", "message"),
    [
        ({"nvidia.com/gpu": "0.5"}, {"nvidia.com/gpu": "0.5"}, "requests[nvidia.com/gpu]", "must be an integer"),
        ({"nvidia.com/gpu": "1"}, None, "spec.containers[0].resources.limits", "Limit must be set for non overcommitable"),
        ({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"}, "resources.requests", "must be equal to nvidia.com/gpu limit of 2"),
    ],
    ids=["fractional-gpu", "gpu-request-without-limit", "gpu-request-below-limit"],
)
def test_extended_resources_are_whole_and_requested_at_their_limit(
    core: client.CoreV1Api, requests: dict[str, str], limits: dict[str, str] | None, field: str, message: str
) -> None:
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod("default", pod("gpu", requests=requests, limits=limits))
    assert refused.value.status == 422
    assert field in refused.value.body and message in refused.value.body


def test_exact_decimals_and_huge_exponents_are_accepted_as_kubernetes_accepts_them(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("tenth", requests={"cpu": "0.1"}, limits={"cpu": "100m"}))
    core.create_namespaced_pod("default", pod("huge", requests={"cpu": "1e10000000"}))
    assert {p.metadata.name for p in core.list_namespaced_pod("default").items} == {"tenth", "huge"}
