"""Finishing a request when deleting its pod is refused: the result is stored first and never rewritten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.settings import Settings
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import (
    LOCAL,
    eventually,
    gateway_settings,
    pod_request,
    result,
    run_to_end,
    serving,
    sim_pod,
    write_cluster_file,
)

CLUSTER = "local-nodelete"
TOKEN = "e2e-no-delete-token"  # a test identity of the simulator, not a secret
NO_DELETE = {
    "name": CLUSTER,
    "provider": "kubeconfig",
    "region": "eu-north-1",
    "credentials": {"kubeconfig": {"path": "PLACEHOLDER"}},
    "sim": {
        "nodes": [{"name": "north-1", "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}}],
        "users": [{"name": "gateway", "token": TOKEN, "verbs": ["get", "list", "watch", "create"]}],
    },
}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    """The local clusters plus one whose API lets the gateway do everything with pods but delete them."""
    path = write_cluster_file(tmp_path / "sim.yaml", extra=[NO_DELETE])
    async with SimWorld.from_file(path, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as w:
        yield w


def config_for(world: SimWorld, tmp_path: Path) -> Settings:
    kubeconfig = tmp_path / "no-delete.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(world.clusters[CLUSTER].kubeconfig(token=TOKEN)))
    entry = {k: v for k, v in NO_DELETE.items() if k != "sim"}
    entry["credentials"] = {"kubeconfig": {"path": str(kubeconfig)}}
    registration = tmp_path / "no-delete.yaml"
    registration.write_text(yaml.safe_dump({"apiVersion": "podgate.io/v1", "kind": "ClusterList", "clusters": [entry]}))
    return gateway_settings(tmp_path, {"clusters": {"files": [str(LOCAL), str(registration)]}})


@pytest.fixture
async def gateway(world: SimWorld, tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(config_for(world, tmp_path))
    assert gw.problems == []
    yield gw
    await gw.stop()


async def test_cancel_stores_the_cancellation_even_when_the_delete_is_refused(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    code = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.05)"
    request = pod_request(code, request_id="cancel-forbidden", regions=("eu-north-1",))
    await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="cancel-forbidden"), timeout=30):
        if r.event.WhichOneof("event") == "log":
            break
    cancelled = (await stub.CancelPod(dispatch_pb2.CancelPodRequest(request_id="cancel-forbidden", reason="stop"))).pod
    assert (cancelled.phase, cancelled.result.reason, cancelled.result.message) == (
        dispatch_pb2.POD_PHASE_CANCELLED,
        "Cancelled",
        "stop",
    )


async def test_a_result_is_not_rewritten_when_the_gateway_restarts_before_the_pod_is_deleted(
    world: SimWorld, tmp_path: Path
) -> None:
    config = config_for(world, tmp_path)
    request = pod_request("print('done')", request_id="finish-1", regions=("eu-north-1",))
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        first = await run_to_end(stub, request)
        name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="finish-1"))).pod.name
    assert result(first).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert sim_pod(world, CLUSTER, name) is not None, "the gateway may not delete pods on this cluster"
    assert deletes(world) == 1
    world.clusters[CLUSTER].store.delete("pods", "default", name, grace_seconds=0)  # an admin cleans up
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        # The resumed request only retries its finish action: the delete, refused again.
        await eventually(lambda: deletes(world) == 2, within=10)
        pod = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="finish-1"))).pod
        replay = [r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="finish-1"), timeout=10)]
    assert pod.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and pod.result == result(first)
    assert replay == first
    assert sum(e.WhichOneof("event") == "result" for e in replay) == 1


def deletes(world: SimWorld) -> int:
    return world.clusters[CLUSTER].request_counts().get(("delete", "pods"), 0)


async def test_delete_succeeded_pod_keeps_only_the_failed_pod(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    lifecycle = dispatch_pb2.LifecycleOptions(on_finish=dispatch_pb2.ON_FINISH_ACTION_DELETE_SUCCEEDED_POD)
    ok = pod_request("print('ok')", regions=("eu-central-1",), lifecycle=lifecycle)
    bad = pod_request("import sys; sys.exit(5)", regions=("eu-central-1",), lifecycle=lifecycle)
    assert result(await run_to_end(stub, ok)).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert result(await run_to_end(stub, bad)).exit_code == 5
    names = {
        r.request_id: (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=r.request_id))).pod.name
        for r in (ok, bad)
    }
    kept = sim_pod(world, "local-eu-cpu", names[bad.request_id])
    assert kept is not None and kept["status"]["phase"] == "Failed" and not kept["metadata"].get("deletionTimestamp")
    gone = sim_pod(world, "local-eu-cpu", names[ok.request_id])
    assert gone is None or gone["metadata"].get("deletionTimestamp")


async def test_a_delete_failing_past_the_clients_retries_is_tried_again_until_the_pod_is_gone_and_the_request_closed(
    world: SimWorld, stub: dispatch_pb2_grpc.DispatchServiceStub
) -> None:
    """Seven 500s in a row outlast the client's own retries (six attempts): before, the request stayed open
    (its pod left for the garbage collector ten minutes on, its tenant's quota held until a restart)."""
    cluster = world.clusters["local-eu-cpu"]
    cluster.fail_requests("delete", "pods", 7)
    request = pod_request("print('done')", request_id="finish-retry", regions=("eu-central-1",))
    events = await run_to_end(stub, request)
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="finish-retry"))).pod.name

    async def closed() -> bool:
        pod = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="finish-retry"))).pod
        return pod.HasField("finish_time")

    await eventually(closed, within=40)
    assert sim_pod(world, "local-eu-cpu", name) is None or sim_pod(world, "local-eu-cpu", name)["metadata"].get(
        "deletionTimestamp"
    ), "the pod is deleted before the request is closed"
    answers = [r.code for r in cluster.faults.log if (r.verb, r.resource, r.name) == ("delete", "pods", name)]
    assert answers == [500] * 7 + [200], answers
    assert cluster.faults.failed_requests.get(("delete", "pods"), 0) == 0


async def test_a_pod_whose_delete_keeps_failing_is_closed_with_its_result_when_its_cluster_is_deregistered(
    world: SimWorld, stub: dispatch_pb2_grpc.DispatchServiceStub, cluster_stub: clusters_pb2_grpc.ClusterServiceStub
) -> None:
    """The finisher tries a failing delete again for minutes; a cluster deregistered meanwhile (its client
    closed) ends that at once: the request is closed, its result as stored, not turned into a gateway error."""
    cluster = world.clusters["local-eu-cpu"]
    cluster.fail_requests("delete", "pods", 1000)
    request = pod_request("print('done')", request_id="finish-dereg", regions=("eu-central-1",))
    first = await run_to_end(stub, request)
    assert result(first).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    await eventually(lambda: cluster.faults.failed_requests[("delete", "pods")] <= 1000 - 7, within=20)
    await cluster_stub.DeregisterCluster(clusters_pb2.DeregisterClusterRequest(name="local-eu-cpu", force=True))

    async def closed() -> dispatch_pb2.Pod | None:
        pod = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="finish-dereg"))).pod
        return pod if pod.HasField("finish_time") else None

    pod = await eventually(closed, within=40)
    assert pod.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and pod.result == result(first)
    replay = [r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="finish-dereg"), timeout=10)]
    assert sum(e.WhichOneof("event") == "result" for e in replay) == 1
