"""The Clusters RPCs end to end: registration (valid and refused), update, get, list, cordon, deregister, restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc, common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import (
    eventually,
    gateway_settings,
    logs,
    pod_request,
    result,
    run_to_end,
    serving,
    violations,
    write_cluster_file,
)

EXTRA = {
    "name": "local-extra",
    "provider": "sim",
    "region": "eu-north-1",
    "credentials": {"sim": {}},
    "sim": {"nodes": [{"name": "north-cpu-1", "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}}]},
}
HEALTHY = clusters_pb2.CLUSTER_HEALTH_HEALTHY


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    """The local clusters plus local-extra, which the gateway's cluster file does not name."""
    path = write_cluster_file(tmp_path / "clusters.yaml", extra=[EXTRA])
    async with SimWorld.from_file(path, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as w:
        yield w


def extra_cluster(world: SimWorld, **fields: object) -> clusters_pb2.Cluster:
    """local-extra as an API registration, by default reached through its kubeconfig file."""
    path = str(world.clusters["local-extra"].kubeconfig_path)
    defaults: dict[str, object] = {
        "name": "local-extra",
        "provider": "kubeconfig",
        "region": "eu-north-1",
        "labels": {"env": "local", "tier": "batch"},
        "credentials": clusters_pb2.ClusterCredentials(kubeconfig=clusters_pb2.KubeconfigSource(path=path)),
    }
    return clusters_pb2.Cluster(**{**defaults, **fields})  # type: ignore[arg-type]


async def health(stub: clusters_pb2_grpc.ClusterServiceStub, name: str) -> int:
    return int((await stub.GetCluster(clusters_pb2.GetClusterRequest(name=name))).cluster.status.health)


@pytest.mark.parametrize("source", ["kubeconfig", "sim"])
async def test_registered_cluster_becomes_healthy_and_runs_pods(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub,
    stub: dispatch_pb2_grpc.DispatchServiceStub,
    world: SimWorld,
    source: str,
) -> None:
    path = str(world.clusters["local-extra"].kubeconfig_path)
    credentials = (
        clusters_pb2.ClusterCredentials(kubeconfig=clusters_pb2.KubeconfigSource(path=path))
        if source == "kubeconfig"
        else clusters_pb2.ClusterCredentials(sim=clusters_pb2.SimSource(kubeconfig_path=path))
    )
    cluster = extra_cluster(world, provider=source, credentials=credentials)
    registered = await cluster_stub.RegisterCluster(clusters_pb2.RegisterClusterRequest(cluster=cluster))
    assert registered.cluster.source == "api"
    assert registered.cluster.cluster.region == "eu-north-1"
    assert registered.cluster.cluster.credentials.WhichOneof("source") == source
    await eventually(lambda: health(cluster_stub, "local-extra"), within=10)
    assert await health(cluster_stub, "local-extra") == HEALTHY
    events = await run_to_end(stub, pod_request("print('north')", regions=("eu-north-1",)))
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert world.clusters["local-extra"].request_counts().get(("create", "pods")) == 1


async def test_invalid_registration_lists_every_field_violation(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, world: SimWorld
) -> None:
    bad = extra_cluster(world, name="Bad_Name", provider="nomad", labels={"bad key!": "x"}, issued_server="http://x")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cluster_stub.RegisterCluster(clusters_pb2.RegisterClusterRequest(cluster=bad))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = violations(caught.value)
    assert {"cluster.name", "cluster.provider", "cluster.labels[bad key!]", "cluster.issued_server"} <= set(fields), fields
    assert "nomad" in fields["cluster.provider"]
    listed = await cluster_stub.ListClusters(clusters_pb2.ListClustersRequest())
    assert "Bad_Name" not in {c.cluster.name for c in listed.clusters}


async def test_duplicate_registration_is_already_exists(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, world: SimWorld
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cluster_stub.RegisterCluster(
            clusters_pb2.RegisterClusterRequest(cluster=extra_cluster(world, name="local-eu-cpu"))
        )
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "UpdateCluster" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("source", "subject_hint"),
    [
        (clusters_pb2.KubeconfigSource(env_var="PODGATE_E2E_NEVER_SET"), "PODGATE_E2E_NEVER_SET"),
        (clusters_pb2.KubeconfigSource(path="/nonexistent/podgate/kubeconfig"), "/nonexistent/podgate/kubeconfig"),
    ],
    ids=["unset-env-var", "missing-file"],
)
async def test_credentials_that_do_not_resolve_are_failed_precondition(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub,
    world: SimWorld,
    source: clusters_pb2.KubeconfigSource,
    subject_hint: str,
) -> None:
    cluster = extra_cluster(world, credentials=clusters_pb2.ClusterCredentials(kubeconfig=source))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cluster_stub.RegisterCluster(clusters_pb2.RegisterClusterRequest(cluster=cluster))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert subject_hint in (caught.value.details() or "")
    assert violations(caught.value) == {"local-extra": "CREDENTIALS"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await cluster_stub.GetCluster(clusters_pb2.GetClusterRequest(name="local-extra"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_update_with_and_without_a_field_mask(cluster_stub: clusters_pb2_grpc.ClusterServiceStub) -> None:
    current = (await cluster_stub.GetCluster(clusters_pb2.GetClusterRequest(name="local-eu-cpu"))).cluster.cluster
    whole = clusters_pb2.Cluster()
    whole.CopyFrom(current)
    whole.weight = 300
    whole.labels["team"] = "ml"
    updated = (await cluster_stub.UpdateCluster(clusters_pb2.UpdateClusterRequest(cluster=whole))).cluster.cluster
    assert updated.weight == 300 and dict(updated.labels) == {**current.labels, "team": "ml"}
    assert updated.region == current.region and updated.max_concurrent_pods == current.max_concurrent_pods

    partial = clusters_pb2.Cluster(name="local-eu-cpu", labels={"tier": "prod"}, weight=7)
    masked = await cluster_stub.UpdateCluster(
        clusters_pb2.UpdateClusterRequest(cluster=partial, update_mask=field_mask_pb2.FieldMask(paths=["labels"]))
    )
    assert dict(masked.cluster.cluster.labels) == {"tier": "prod"}
    assert masked.cluster.cluster.weight == 300, "fields outside the mask are kept"
    assert masked.cluster.cluster.region == current.region
    got = (await cluster_stub.GetCluster(clusters_pb2.GetClusterRequest(name="local-eu-cpu"))).cluster
    assert dict(got.cluster.labels) == {"tier": "prod"} and got.source == "api"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cluster_stub.UpdateCluster(
            clusters_pb2.UpdateClusterRequest(cluster=partial, update_mask=field_mask_pb2.FieldMask(paths=["name"]))
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in violations(caught.value)


async def test_get_and_list_with_selectors(cluster_stub: clusters_pb2_grpc.ClusterServiceStub) -> None:
    got = (await cluster_stub.GetCluster(clusters_pb2.GetClusterRequest(name="local-eu-gpu"))).cluster
    assert (got.cluster.region, got.cluster.provider) == ("eu-west-1", "sim")
    assert got.source.endswith("clusters/local.yaml")
    assert got.cluster.credentials.WhichOneof("source") == "sim"

    async def names(selector: common_pb2.LabelSelector) -> set[str]:
        listed = await cluster_stub.ListClusters(clusters_pb2.ListClustersRequest(selector=selector))
        return {c.cluster.name for c in listed.clusters}

    assert await names(common_pb2.LabelSelector()) == {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"}
    assert await names(common_pb2.LabelSelector(match_labels={"accelerator": "nvidia"})) == {
        "local-eu-gpu",
        "local-us-gpu",
    }
    assert await names(common_pb2.LabelSelector(expression="tier in (dev),!accelerator")) == {"local-eu-cpu"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await names(common_pb2.LabelSelector(expression="tier in ("))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await cluster_stub.GetCluster(clusters_pb2.GetClusterRequest(name="no-such-cluster"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_cordon_keeps_new_pods_away_with_its_reason_and_uncordon_restores(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    cordoned = await cluster_stub.CordonCluster(
        clusters_pb2.CordonClusterRequest(name="local-eu-gpu", reason="maintenance window")
    )
    assert cordoned.cluster.status.cordoned and cordoned.cluster.status.cordon_reason == "maintenance window"
    assert "podgate.io/cordoned" in {t.key for t in cordoned.cluster.status.effective_taints}

    eu = pod_request("print('eu')", regions=("eu-west-1", "eu-central-1"))
    explained = (await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=eu))).decision
    verdicts = {v.cluster: v for v in explained.verdicts}
    # Not chosen now, and not ruled out for ever: a request with a placement timeout waits for the uncordon.
    assert verdicts["local-eu-gpu"].verdict == dispatch_pb2.VERDICT_NO_CAPACITY
    assert not verdicts["local-eu-gpu"].chosen
    assert "cordoned" in verdicts["local-eu-gpu"].reason and "maintenance window" in verdicts["local-eu-gpu"].reason
    events = await run_to_end(stub, eu)
    assert [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"] == ["local-eu-cpu"]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod_request("print(1)", regions=("eu-west-1",))))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "maintenance window" in (caught.value.details() or "")

    uncordoned = await cluster_stub.UncordonCluster(clusters_pb2.UncordonClusterRequest(name="local-eu-gpu"))
    assert not uncordoned.cluster.status.cordoned
    assert "podgate.io/cordoned" not in {t.key for t in uncordoned.cluster.status.effective_taints}
    west = pod_request("print('west')", regions=("eu-west-1",))
    assert result(await run_to_end(stub, west)).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert world.clusters["local-eu-gpu"].request_counts().get(("create", "pods")) == 1


async def test_deregister_is_refused_while_pods_run_unless_forced(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, stub: dispatch_pb2_grpc.DispatchServiceStub
) -> None:
    code = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.05)"
    request = pod_request(code, request_id="dereg-1", regions=("eu-central-1",))
    await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="dereg-1"), timeout=30):
        if r.event.WhichOneof("event") == "log":
            break
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cluster_stub.DeregisterCluster(clusters_pb2.DeregisterClusterRequest(name="local-eu-cpu"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert violations(caught.value) == {"local-eu-cpu": "RUNNING_PODS"}
    assert "force" in (caught.value.details() or "")

    await cluster_stub.DeregisterCluster(clusters_pb2.DeregisterClusterRequest(name="local-eu-cpu", force=True))
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await cluster_stub.GetCluster(clusters_pb2.GetClusterRequest(name="local-eu-cpu"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    final = await asyncio.wait_for(
        _last(stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="dereg-1"), timeout=30)), timeout=30
    )
    assert final.phase == dispatch_pb2.POD_PHASE_FAILED
    assert "deregistered" in final.message


async def _last(call: object) -> dispatch_pb2.PodResult:
    events = [r.event async for r in call]  # type: ignore[attr-defined]
    return result(events)


async def test_update_while_a_pod_runs_keeps_following_it(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, stub: dispatch_pb2_grpc.DispatchServiceStub
) -> None:
    """An update replaces the cluster's runtime (client, watches): the running pod is followed to its end."""
    code = "import time\nfor i in range(30):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.05)"
    request = pod_request(code, regions=("eu-central-1",))
    seen: list[dispatch_pb2.PodEvent] = []
    async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=30):
        seen.append(r.event)
        if r.event.WhichOneof("event") == "log" and r.event.log.text == "tick 3":
            await cluster_stub.UpdateCluster(
                clusters_pb2.UpdateClusterRequest(
                    cluster=clusters_pb2.Cluster(name="local-eu-cpu", weight=50),
                    update_mask=field_mask_pb2.FieldMask(paths=["weight"]),
                )
            )
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert logs(seen) == [f"tick {i}" for i in range(30)]
    phases = [e.phase.phase for e in seen if e.WhichOneof("event") == "phase"]
    assert phases.count(dispatch_pb2.POD_PHASE_RUNNING) == 1


async def test_registrations_and_cordons_survive_a_gateway_restart(world: SimWorld, tmp_path: Path) -> None:
    config = gateway_settings(tmp_path)
    async with serving(config) as channel:
        stub = clusters_pb2_grpc.ClusterServiceStub(channel)
        await stub.RegisterCluster(clusters_pb2.RegisterClusterRequest(cluster=extra_cluster(world)))
        await stub.CordonCluster(clusters_pb2.CordonClusterRequest(name="local-us-gpu", reason="quota review"))
    async with serving(config) as channel:
        stub = clusters_pb2_grpc.ClusterServiceStub(channel)
        listed = {c.cluster.name: c for c in (await stub.ListClusters(clusters_pb2.ListClustersRequest())).clusters}
        assert set(listed) == {"local-eu-gpu", "local-eu-cpu", "local-us-gpu", "local-extra"}
        assert listed["local-extra"].source == "api" and dict(listed["local-extra"].cluster.labels) == {
            "env": "local",
            "tier": "batch",
        }
        assert listed["local-us-gpu"].status.cordoned
        assert listed["local-us-gpu"].status.cordon_reason == "quota review"
        await eventually(lambda: health(stub, "local-extra"), within=10)
        assert await health(stub, "local-extra") == HEALTHY


async def test_a_request_waits_for_an_uncordon_within_its_placement_timeout_and_can_be_cancelled_meanwhile(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    await cluster_stub.CordonCluster(clusters_pb2.CordonClusterRequest(name="local-eu-gpu", reason="drain"))
    waiting = [pod_request("print('after uncordon')", regions=("eu-west-1",)) for _ in range(2)]
    for r in waiting:
        r.placement.timeout.FromSeconds(30)
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=r))
    cancelled = await stub.CancelPod(
        dispatch_pb2.CancelPodRequest(request_id=waiting[0].request_id, reason="changed my mind")
    )
    assert (cancelled.pod.phase, cancelled.pod.result.reason) == (dispatch_pb2.POD_PHASE_CANCELLED, "Cancelled")
    assert world.clusters["local-eu-gpu"].request_counts().get(("create", "pods"), 0) == 0
    queued = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=waiting[1].request_id))).pod
    assert queued.phase == dispatch_pb2.POD_PHASE_QUEUED

    await cluster_stub.UncordonCluster(clusters_pb2.UncordonClusterRequest(name="local-eu-gpu"))
    watch = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=waiting[1].request_id), timeout=30)
    events = [r.event async for r in watch]
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert [e.placed.cluster for e in events if e.WhichOneof("event") == "placed"] == ["local-eu-gpu"]
    assert logs(events) == ["after uncordon"]
    assert world.clusters["local-eu-gpu"].request_counts().get(("create", "pods")) == 1


async def test_an_update_racing_a_deregistration_never_brings_the_cluster_back(
    cluster_stub: clusters_pb2_grpc.ClusterServiceStub, gateway: Gateway
) -> None:
    update = clusters_pb2.UpdateClusterRequest(
        cluster=clusters_pb2.Cluster(name="local-eu-cpu", weight=9),
        update_mask=field_mask_pb2.FieldMask(paths=["weight"]),
    )
    answers = await asyncio.gather(
        cluster_stub.UpdateCluster(update),
        cluster_stub.DeregisterCluster(clusters_pb2.DeregisterClusterRequest(name="local-eu-cpu", force=True)),
        return_exceptions=True,
    )
    assert not isinstance(answers[1], BaseException), answers[1]
    assert not isinstance(answers[0], BaseException) or answers[0].code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await cluster_stub.GetCluster(clusters_pb2.GetClusterRequest(name="local-eu-cpu"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert "local-eu-cpu" not in {c.name for c in await gateway.store.list_clusters()}
