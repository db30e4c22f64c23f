"""Races between two replicas on one PostgreSQL database (docs/decisions/0021): both are `start_gateway`
in this process, each with its own state directory, real gRPC, and the simulated clusters (virtual nodes,
so a pod costs a timer).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.pods import builder
from gateway.policy.identity import new_token
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import eventually, gateway_settings, merged, pod_request, sim_pod, virtual_cluster_file
from tests.postgres import PostgresServer, database_name

LEASE_SECONDS = 3.0
ROUNDS = 30


@pytest.fixture
async def database_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    async with postgres_server.database(database_name()) as url:
        yield url.render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def two_replicas(
    tmp_path: Path, url: str, raw: Mapping[str, Any] | None = None
) -> AsyncIterator[tuple[SimWorld, Counter[str], list[Gateway]]]:
    """The virtual world, how many pods were created per request id, and two replicas of it on `url`; `raw`
    adds settings to both."""
    clusters = virtual_cluster_file(tmp_path)
    created: Counter[str] = Counter()

    def count(type_: str, new: dict[str, Any], _old: Any) -> None:
        if type_ == "ADDED":
            created[(new["metadata"].get("annotations") or {}).get(builder.REQUEST_ID_ANNOTATION, "")] += 1

    async with SimWorld.from_file(clusters, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as world:
        for cluster in world.clusters.values():
            cluster.store.subscribe("pods", count)
        gateways: list[Gateway] = []
        try:
            for name in ("r0", "r1"):
                shutil.copytree(tmp_path / "kubeconfigs", tmp_path / name / "kubeconfigs")
                base = {"clusters": {"files": [str(clusters)]}, "database": {"url": url, "lease_seconds": LEASE_SECONDS}}
                gateways.append(await start_gateway(gateway_settings(tmp_path / name, merged(base, raw or {}))))
            yield world, created, gateways
        finally:
            for gateway in gateways:
                await gateway.stop()


async def cordon(gateways: list[Gateway], cordoned: bool, names: Iterable[str] = ()) -> None:
    """At every replica (each keeps its own view): the named clusters, or all."""
    for gateway in gateways:
        for cluster in names or gateway.registry.names():
            await gateway.registry.set_cordon(cluster, cordoned, "requests wait" if cordoned else "")


def waiting_pod(request_id: str, *clusters: str) -> dispatch_pb2.PodRequest:
    """A request for `clusters` (default any) that waits up to a minute while they are cordoned: admitted,
    not placed."""
    request = pod_request("", request_id=request_id)
    request.placement.timeout.FromSeconds(60)
    request.placement.clusters.extend(clusters)
    return request


def running_pod(request_id: str) -> dispatch_pb2.PodRequest:
    """Runs ten minutes on a virtual node."""
    request = pod_request("", request_id=request_id)
    request.pod_json = request.pod_json.replace(
        '"metadata": {', '"metadata": {"annotations": {"sim.podgate.io/duration": "600"}, ', 1
    )
    return request


async def test_two_replicas_racing_for_a_tenants_last_slot_admit_exactly_one(tmp_path: Path, database_url: str) -> None:
    """30 rounds of 2-5 submissions at once, spread over both replicas, for a quota of 1: one admitted each
    round, the others RESOURCE_EXHAUSTED naming the quota; the admitted one (waiting for a cluster, so no pod
    is made) is cancelled to free the slot."""
    token, hashed = new_token("team-a-token")
    tenants = {
        "tenants": [{"name": "team-a", "clusters": ["*"], "namespaces": ["*"], "max_concurrent_pods": 1}],
        "authentication": {"static_tokens": [{"id": "team-a-token", "tenant": "team-a", "hash": hashed}]},
    }
    metadata = (("authorization", f"Bearer {token}"),)
    admitted_per_round: list[list[str]] = []
    async with two_replicas(tmp_path, database_url, tenants) as (_world, _created, gateways):
        await cordon(gateways, True)
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{g.port}") for g in gateways]
        stubs = [dispatch_pb2_grpc.DispatchServiceStub(c) for c in channels]
        try:
            for round_ in range(ROUNDS):
                ids = [f"race-{round_}-{i}" for i in range(2 + round_ % 4)]
                answers = await asyncio.gather(
                    *(
                        stubs[i % 2].SubmitPod(dispatch_pb2.SubmitPodRequest(pod=waiting_pod(rid)), metadata=metadata, timeout=30)
                        for i, rid in enumerate(ids)
                    ),
                    return_exceptions=True,
                )
                admitted = [rid for rid, a in zip(ids, answers, strict=True) if isinstance(a, dispatch_pb2.SubmitPodResponse)]
                refused = [a for a in answers if not isinstance(a, dispatch_pb2.SubmitPodResponse)]
                admitted_per_round.append(admitted)
                for error in refused:
                    assert isinstance(error, grpc.aio.AioRpcError), error
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                    assert "'max_concurrent_pods'" in (error.details() or "") and "the limit is 1" in (error.details() or "")
                for rid in admitted:  # at the replica that admitted it, which runs it: returns once it is finished
                    at = stubs[ids.index(rid) % 2]
                    reply = await at.CancelPod(dispatch_pb2.CancelPodRequest(request_id=rid, reason="next round"), metadata=metadata, timeout=30)
                    assert reply.pod.phase == dispatch_pb2.POD_PHASE_CANCELLED, reply.pod
        finally:
            for channel in channels:
                await channel.close()
    assert [len(a) for a in admitted_per_round] == [1] * ROUNDS, admitted_per_round


async def is_running(stub: dispatch_pb2_grpc.DispatchServiceStub, request_id: str) -> bool:
    reply = await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request_id), timeout=10)
    return bool(reply.pod.phase == dispatch_pb2.POD_PHASE_RUNNING)


async def test_a_stored_cancel_is_carried_out_by_the_replica_that_takes_the_request_over(
    tmp_path: Path, database_url: str
) -> None:
    """The owner "dies" (its runners and lease loop stop, pods untouched, its lease left to run out) just as
    a cancel reaches the other replica, whose NOTIFY nobody acts on. The replica that claims the requests
    cancels them from the record: the running pod is deleted, and the one still waiting for its cluster
    (uncordoned meanwhile, so a resumed request would create it) never gets a pod."""
    async with two_replicas(tmp_path, database_url) as (world, created, (owner, taker)):
        await cordon([owner, taker], True, ["local-us-gpu"])
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{owner.port}") as c0,
            grpc.aio.insecure_channel(f"127.0.0.1:{taker.port}") as c1,
        ):
            at_owner, at_taker = dispatch_pb2_grpc.DispatchServiceStub(c0), dispatch_pb2_grpc.DispatchServiceStub(c1)
            await at_owner.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=running_pod("running")), timeout=30)
            await at_owner.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=waiting_pod("waiting", "local-us-gpu")), timeout=30)
            await eventually(lambda: is_running(at_taker, "running"), within=30)
            await owner.dispatcher.close(release=False)  # dies
            await cordon([taker], False)
            replies = await asyncio.gather(
                *(
                    at_taker.CancelPod(dispatch_pb2.CancelPodRequest(request_id=rid, reason="not needed"), timeout=60)
                    for rid in ("running", "waiting")
                )
            )
        running, waiting = (reply.pod for reply in replies)
        assert [running.phase, waiting.phase] == [dispatch_pb2.POD_PHASE_CANCELLED] * 2, replies
        assert (running.result.reason, running.result.message) == ("Cancelled", "not needed")
        pod = sim_pod(world, running.cluster, running.name)
        assert pod is None or "deletionTimestamp" in pod["metadata"], pod
    assert (created["running"], created["waiting"]) == (1, 0)
