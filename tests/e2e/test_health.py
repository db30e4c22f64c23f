"""Cluster health and live capacity end to end: outage -> unreachable (tainted, avoided), recovery, free GPUs."""

from __future__ import annotations

from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc, common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import eventually, pod_request, result, run_to_end, sim_pod

HEALTHY, UNREACHABLE = clusters_pb2.CLUSTER_HEALTH_HEALTHY, clusters_pb2.CLUSTER_HEALTH_UNREACHABLE
A100 = "NVIDIA-A100-SXM4-40GB"


async def status_of(stub: clusters_pb2_grpc.ClusterServiceStub, name: str) -> clusters_pb2.ClusterStatus:
    listed = await stub.ListClusters(clusters_pb2.ListClustersRequest(selector=common_pb2.LabelSelector()))
    return next(c.status for c in listed.clusters if c.cluster.name == name)


def taint_keys(status: clusters_pb2.ClusterStatus) -> set[str]:
    return {t.key for t in status.effective_taints}


async def test_outage_taints_the_cluster_unreachable_and_recovery_clears_it(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    cluster = world.clusters["local-eu-cpu"]
    assert (await status_of(cluster_stub, "local-eu-cpu")).health == HEALTHY
    await cluster.outage()
    assert (await status_of(cluster_stub, "local-eu-cpu")).health == HEALTHY, "one failed probe does not taint"

    down = await eventually(lambda: _with_health(cluster_stub, "local-eu-cpu", UNREACHABLE), within=10, every=0.05)
    assert "podgate.io/unreachable" in taint_keys(down)
    assert down.health_message
    request = pod_request("print('where')", regions=("eu-west-1", "eu-central-1"))
    explained = (await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=request))).decision
    verdict = next(v for v in explained.verdicts if v.cluster == "local-eu-cpu")
    assert verdict.verdict != dispatch_pb2.VERDICT_ELIGIBLE and "unreachable" in verdict.reason
    assert explained.cluster == "local-eu-gpu"
    events = await run_to_end(stub, request)
    assert [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"] == ["local-eu-gpu"]
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED

    await cluster.restore()
    assert (await status_of(cluster_stub, "local-eu-cpu")).health == UNREACHABLE, "one good probe does not untaint"
    up = await eventually(lambda: _with_health(cluster_stub, "local-eu-cpu", HEALTHY), within=10, every=0.05)
    assert "podgate.io/unreachable" not in taint_keys(up)
    again = (await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=request))).decision
    assert next(v for v in again.verdicts if v.cluster == "local-eu-cpu").verdict == dispatch_pb2.VERDICT_ELIGIBLE
    assert cluster.request_counts().get(("create", "pods"), 0) == 0


async def _with_health(
    stub: clusters_pb2_grpc.ClusterServiceStub, name: str, health: int
) -> clusters_pb2.ClusterStatus | None:
    status = await status_of(stub, name)
    return status if status.health == health else None


async def test_free_gpus_by_type_drop_while_gpu_pods_run(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    idle = await status_of(cluster_stub, "local-eu-gpu")
    assert dict(idle.gpus_free) == {A100: 2}
    request = pod_request(
        "import time\nfor i in range(40):\n    print(i, flush=True)\n    time.sleep(0.05)",
        regions=("eu-west-1",),
        gpus=1,
    )
    call = stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=30)
    async for r in call:
        if r.event.WhichOneof("event") == "log":
            break
    busy = await eventually(lambda: _gpus_free(cluster_stub, 1))
    assert busy.running_pods == 1
    gpu_node = next(n for n in busy.nodes if n.gpu_type == A100)
    assert gpu_node.gpus_free == 1
    final = result([r.event async for r in call])
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    await eventually(lambda: _gpus_free(cluster_stub, 2))

    # A pod the gateway did not make counts too: capacity comes from the watch on every pod of the cluster.
    world.clusters["local-eu-gpu"].store.create(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "someone-else", "namespace": "default"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.12",
                        "command": ["python", "-c", "import time; time.sleep(5)"],
                        "resources": {"limits": {"nvidia.com/gpu": "2"}},
                    }
                ],
            },
        },
    )
    taken = await eventually(lambda: _gpus_free(cluster_stub, 0))
    await eventually(
        lambda: (sim_pod(world, "local-eu-gpu", "someone-else") or {}).get("status", {}).get("phase") == "Running"
    )
    assert taken.running_pods == 0, "running_pods counts the gateway's pods only"
    explained = (await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=request))).decision
    assert explained.verdicts[0].verdict == dispatch_pb2.VERDICT_NO_CAPACITY


async def _gpus_free(stub: clusters_pb2_grpc.ClusterServiceStub, free: int) -> clusters_pb2.ClusterStatus | None:
    status = await status_of(stub, "local-eu-gpu")
    return status if dict(status.gpus_free) == {A100: free} else None
