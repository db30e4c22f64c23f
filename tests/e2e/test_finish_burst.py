"""Pods that finish together are deleted at a bounded pace (gateway/clusters/kubeapi/pacing.py): an API server that
admits ten short requests at a time answers none of their deletes 429, and every pod is deleted once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc

from gateway import domain
from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.clusters.kubeapi.pacing import DELETES_IN_FLIGHT
from tests.e2e.conftest import eventually, gateway_settings, result, virtual_world

PODS = 30
CLUSTER = "local-eu-cpu"
SLOTS = DELETES_IN_FLIGHT + 2  # the API server's max-in-flight: room for the deletes and a few other requests


def finishing_pod(i: int) -> dispatch_pb2.PodRequest:
    annotations = {"sim.podgate.io/duration": "4"}
    container = {"name": "base", "image": "busybox:1.36", "command": ["true"]}
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "finish", "annotations": annotations},
                "spec": {"containers": [container]}}  # fmt: skip
    return dispatch_pb2.PodRequest(
        request_id=f"finish-{i:03d}", pod_json=json.dumps(manifest), placement=common_pb2.Placement(clusters=[CLUSTER])
    )


async def all_running(gw: Gateway, request_ids: list[str]) -> bool:
    records = [await gw.store.get_pod_record(r) for r in request_ids]
    return all(r is not None and r.phase is domain.PodPhase.RUNNING for r in records)


async def test_pods_finishing_together_are_deleted_within_the_bound_with_no_429(tmp_path: Path) -> None:
    """30 pods end within a moment of each other: their deletes went out at once, the API server admitted ten and
    answered the rest 429, and those were sent again after Retry-After. Now at most DELETES_IN_FLIGHT go at once."""
    async with virtual_world(tmp_path) as world:
        sim = world.clusters[CLUSTER]
        raw = {"clusters": {"files": [str(tmp_path / "virtual-clusters.yaml")]}}
        gw = await start_gateway(gateway_settings(tmp_path, raw))
        try:
            requests = [finishing_pod(i) for i in range(PODS)]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
                stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
                runs = [asyncio.create_task(_run(stub, request)) for request in requests]
                await eventually(lambda: all_running(gw, [r.request_id for r in requests]), within=30)
                sim.faults.reset_counters()
                sim.set_faults(max_in_flight=SLOTS, latency=0.05, retry_after=1)
                outcomes = await asyncio.gather(*runs)
            assert [result(events).phase for events in outcomes] == [dispatch_pb2.POD_PHASE_SUCCEEDED] * PODS
            await eventually(lambda: _none_left(sim.store.list("pods", "default")[0]), within=30)
        finally:
            await gw.stop()
    assert sim.faults.peak("delete", "pods") <= DELETES_IN_FLIGHT
    assert sim.faults.count("delete", "pods") == PODS  # none answered 429 and sent again


async def _run(stub: dispatch_pb2_grpc.DispatchServiceStub, request: dispatch_pb2.PodRequest) -> list[dispatch_pb2.PodEvent]:
    return [r.event async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60)]


def _none_left(pods: list[dict[str, Any]]) -> bool:
    return not any(str((p.get("metadata") or {}).get("name", "")).startswith("finish") for p in pods)
