"""End-to-end fixtures: the simulated clusters of clusters/local.yaml, a gateway on port 0, a gRPC channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway._proto.podgate.v1 import clusters_pb2_grpc, common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.settings import Settings, parse_settings
from gateway.sim.cluster import SimWorld
from tests.conftest import ROOT

LOCAL = ROOT / "clusters" / "local.yaml"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    async with SimWorld.from_file(LOCAL, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as w:
        yield w


def virtual_cluster_file(tmp_path: Path) -> Path:
    """clusters/local.yaml with every node virtual: an accepted pod costs a timer, not a process."""
    document = yaml.safe_load(LOCAL.read_text())
    for entry in document["clusters"]:
        for node in entry["sim"]["nodes"]:
            node["runtime"] = "virtual"
    path = tmp_path / "virtual-clusters.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def virtual_world(tmp_path: Path) -> SimWorld:
    """The local clusters with every node virtual (enter it with `async with`)."""
    return SimWorld.from_file(
        virtual_cluster_file(tmp_path), kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None
    )


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it, section by section."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def gateway_settings(state_dir: Path, raw: Mapping[str, Any] | None = None) -> Settings:
    """A test gateway's settings, parsed like a file: loopback port 0, the local clusters, fast probes; `raw`
    adds or overrides keys (`{"clusters": {"probe_interval_seconds": 60}}`)."""
    base = {
        "server": {"listen": "127.0.0.1:0", "state_dir": str(state_dir)},
        "clusters": {"files": [str(LOCAL)], "probe_interval_seconds": 0.3},
        "dispatch": {"gc_interval_seconds": 3600},
    }
    return parse_settings(merged(base, raw or {}), env={})


@pytest.fixture
def api_protocol() -> str:
    """How the gateway talks to the API servers: "h2" (the default, `clusters.api_protocol: auto` against the
    simulator, which offers h2) or "http/1.1" (`clusters.api_protocol: http/1.1`). A test runs on both with
    `API_PROTOCOLS`."""
    return "h2"


API_PROTOCOLS = pytest.mark.parametrize("api_protocol", ["h2", "http/1.1"])


def api_protocol_settings(api_protocol: str) -> dict[str, Any]:
    return {"clusters": {"api_protocol": "auto" if api_protocol == "h2" else "http/1.1"}}


def went_over(world: SimWorld, cluster: str, api_protocol: str) -> bool:
    """Whether the gateway's requests to `cluster` went over the protocol named (HTTP/2 connections or none)."""
    return (world.clusters[cluster].http2_connections_accepted > 0) == (api_protocol == "h2")


@pytest.fixture
async def gateway(world: SimWorld, tmp_path: Path, api_protocol: str) -> AsyncIterator[Gateway]:
    gw = await start_gateway(gateway_settings(tmp_path, api_protocol_settings(api_protocol)))
    assert gw.problems == []
    yield gw
    await gw.stop()


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[dispatch_pb2_grpc.DispatchServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield dispatch_pb2_grpc.DispatchServiceStub(channel)


@pytest.fixture
async def cluster_stub(gateway: Gateway) -> AsyncIterator[clusters_pb2_grpc.ClusterServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield clusters_pb2_grpc.ClusterServiceStub(channel)


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


# --- shared by the pod-failure, XCom, logs, cluster, health and GC tests ---------------------------


def container(name: str, code: str, **extra: Any) -> dict[str, Any]:
    """A python:3.12 container running `code`."""
    return {"name": name, "image": "python:3.12", "command": ["python", "-c", code], **extra}


def pod_json(
    containers: list[dict[str, Any]], *, init: list[dict[str, Any]] | None = None, name: str = "e2e", **spec: Any
) -> str:
    body: dict[str, Any] = {"containers": containers, **spec}
    if init:
        body["initContainers"] = init
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body})


def request_for(manifest: str, *, regions: tuple[str, ...] = (), **extra: Any) -> dispatch_pb2.PodRequest:
    """A PodRequest for a whole manifest (see pod_json); extra PodRequest fields as keywords."""
    return dispatch_pb2.PodRequest(
        request_id=f"e2e-{uuid.uuid4().hex[:12]}",
        pod_json=manifest,
        placement=common_pb2.Placement(regions=list(regions)),
        **extra,
    )


def write_cluster_file(
    path: Path, *, runtime: dict[str, Any] | None = None, extra: list[dict[str, Any]] | None = None
) -> Path:
    """clusters/local.yaml with a `sim.runtime` block on every cluster and extra cluster entries."""
    document = yaml.safe_load(LOCAL.read_text())
    for entry in document["clusters"]:
        entry["sim"]["runtime"] = dict(runtime or {})
    document["clusters"] += extra or []
    path.write_text(yaml.safe_dump(document))
    return path


def kinds(events: list[dispatch_pb2.PodEvent]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def warnings(final: dispatch_pb2.PodResult) -> set[str]:
    """The reasons of the warning events carried by a result."""
    return {e.reason for e in final.warning_events}


def sim_pod(world: SimWorld, cluster: str, name: str) -> dict[str, Any] | None:
    """The pod as the simulated cluster stores it (None once gone)."""
    pods = world.clusters[cluster].store.list("pods", None)[0]
    return next((p for p in pods if p["metadata"]["name"] == name), None)


async def eventually(check: Any, *, within: float = 20.0, every: float = 0.1) -> Any:
    """Polls an async or plain check until it returns a truthy value; fails with the last value after `within`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert loop.time() < deadline, f"condition not met within {within}s (last value {value!r})"
        await asyncio.sleep(every)


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest field violations (field -> description) or PreconditionFailure ones (subject -> type)."""
    status = rpc_status.from_call(error)
    assert status is not None and status.details, f"{error.code()}: {error.details()} carries no details"
    bad, failure = error_details_pb2.BadRequest(), error_details_pb2.PreconditionFailure()
    if status.details[0].Unpack(bad):
        return {v.field: v.description for v in bad.field_violations}
    assert status.details[0].Unpack(failure)
    return {v.subject: v.type for v in failure.violations}


@contextlib.asynccontextmanager
async def serving(config: Settings) -> AsyncIterator[grpc.aio.Channel]:
    """A gateway on `config` with every cluster loaded, and a channel to it; stopped on exit (pods keep running)."""
    gw = await start_gateway(config)
    try:
        assert gw.problems == []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            yield channel
    finally:
        await gw.stop()
