"""Bugs a new user hit in the first hour, each through real gRPC against the simulator."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway._proto.podgate.v1 import (
    clusters_pb2,
    clusters_pb2_grpc,
    dispatch_pb2,
    dispatch_pb2_grpc,
)
from gateway.app import Gateway
from gateway.observability import logging as logcontext
from gateway.observability.metrics import REGISTRY
from tests.e2e.conftest import eventually, pod_request, run_to_end

SLEEP = "import time\nprint('up', flush=True)\ntime.sleep(60)"


def grace(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


async def test_the_reattach_timer_does_not_cancel_a_pod_that_finished_meanwhile(
    stub: dispatch_pb2_grpc.DispatchServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.pods")
    code = "import time\nprint('up', flush=True)\ntime.sleep(0.5)"
    request = pod_request(code, lifecycle=dispatch_pb2.LifecycleOptions(reattach_grace=grace(3)))
    await _leave_after_first_line(stub, request)

    async def succeeded() -> bool:
        got = await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))
        return got.pod.phase == dispatch_pb2.POD_PHASE_SUCCEEDED

    await eventually(succeeded, within=30)
    await asyncio.sleep(3.5)  # past the grace
    assert not [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"cancelling {request.request_id}")]


async def _leave_after_first_line(stub: dispatch_pb2_grpc.DispatchServiceStub, request: dispatch_pb2.PodRequest) -> None:
    call = stub.RunPod(dispatch_pb2.RunPodRequest(pod=request))
    async for response in call:
        if response.event.WhichOneof("event") == "log":
            break
    call.cancel()


async def test_a_cancel_the_gateway_makes_itself_is_audited(
    stub: dispatch_pb2_grpc.DispatchServiceStub, gateway: Gateway
) -> None:
    request = pod_request(SLEEP, lifecycle=dispatch_pb2.LifecycleOptions(on_disconnect=dispatch_pb2.DISCONNECT_POLICY_CANCEL))
    await _leave_after_first_line(stub, request)

    async def cancelled() -> bool:
        got = await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))
        return got.pod.phase == dispatch_pb2.POD_PHASE_CANCELLED

    await eventually(cancelled, within=30)
    entries = await eventually(lambda: _cancels(gateway, request.request_id), within=10)
    assert entries[0].actor == "podgate"
    assert "the client disconnected" in entries[0].record["message"]


async def _cancels(gateway: Gateway, request_id: str) -> list[object] | None:
    entries, _ = await gateway.store.list_audit(action="pod.cancel")
    mine = [e for e in entries if e.record.get("request_id") == request_id]
    return mine or None


async def test_a_submission_no_cluster_can_take_counts_as_no_fit(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    def no_fit() -> float:
        return REGISTRY.get_sample_value("podgate_placement_decisions_total", {"cluster": "", "reason": "no_fit"}) or 0.0

    before = no_fit()
    request = pod_request("print(1)", regions=("eu-central-1",), gpus=1)
    with pytest.raises(Exception, match="no cluster"):
        await run_to_end(stub, request)
    assert no_fit() == before + 1


async def test_background_work_does_not_log_the_request_id_of_the_rpc_that_started_it(gateway: Gateway) -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logcontext.JsonFormatter())  # formats at emit time, in the logging task's context
    logger = logging.getLogger("gateway.clusters")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    kubeconfig = gateway.settings.current.server.kubeconfig_dir / "local-eu-cpu.kubeconfig"
    cluster = clusters_pb2.Cluster(
        name="late", provider="kubeconfig", region="eu-central-1",
        credentials=clusters_pb2.ClusterCredentials(kubeconfig=clusters_pb2.KubeconfigSource(path=str(kubeconfig))),
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = clusters_pb2_grpc.ClusterServiceStub(channel)
            await stub.RegisterCluster(clusters_pb2.RegisterClusterRequest(cluster=cluster))

        def healthy() -> dict[str, str] | None:
            found = [json.loads(line) for line in lines.getvalue().splitlines()]
            return next((e for e in found if e["message"].lower() == "cluster late is now healthy"), None)

        entry = await eventually(healthy, within=10)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert entry["level"] == "INFO"  # a recovery is not a warning
    assert "request_id" not in entry and "tenant" not in entry and entry["cluster"] == "late"
