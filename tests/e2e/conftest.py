"""End-to-end fixtures: the simulated clusters of clusters/local.yaml, a gateway on port 0, a gRPC channel."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, GatewayConfig, start_gateway
from gateway.sim.cluster import SimWorld
from tests.conftest import ROOT

LOCAL = ROOT / "clusters" / "local.yaml"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    async with SimWorld.from_file(LOCAL, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as w:
        yield w


def gateway_config(state_dir: Path) -> GatewayConfig:
    return GatewayConfig(
        listen="127.0.0.1:0", state_dir=state_dir, cluster_files=[LOCAL], probe_interval=0.3, gc_interval=3600
    )


@pytest.fixture
async def gateway(world: SimWorld, tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(gateway_config(tmp_path))
    assert gw.problems == []
    yield gw
    await gw.stop()


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[dispatch_pb2_grpc.DispatchServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield dispatch_pb2_grpc.DispatchServiceStub(channel)


def python_pod(code: str, *, gpus: int = 0, name: str = "e2e", **container: Any) -> str:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    main = {
        "name": "base",
        "image": "python:3.12",
        "command": ["python", "-c", code],
        "resources": resources,
        **container,
    }
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [main]}})


def pod_request(
    code: str,
    *,
    request_id: str = "",
    regions: tuple[str, ...] = (),
    gpus: int = 0,
    xcom: int = dispatch_pb2.XCOM_MODE_AUTO,
    **extra: Any,
) -> dispatch_pb2.PodRequest:
    return dispatch_pb2.PodRequest(
        request_id=request_id or f"e2e-{uuid.uuid4().hex[:12]}",
        pod_json=python_pod(code, gpus=gpus),
        placement=common_pb2.Placement(regions=list(regions)),
        xcom=dispatch_pb2.XcomOptions(mode=xcom),
        **extra,
    )


async def run_to_end(
    stub: dispatch_pb2_grpc.DispatchServiceStub, request: dispatch_pb2.PodRequest
) -> list[dispatch_pb2.PodEvent]:
    return [r.event async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60)]


def logs(events: list[dispatch_pb2.PodEvent]) -> list[str]:
    return [e.log.text for e in events if e.WhichOneof("event") == "log"]


def result(events: list[dispatch_pb2.PodEvent]) -> dispatch_pb2.PodResult:
    assert events and events[-1].WhichOneof("event") == "result", [e.WhichOneof("event") for e in events]
    return events[-1].result
