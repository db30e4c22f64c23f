"""A gateway that dies with many pods in flight, restarted, on SQLite and PostgreSQL, on the simulator over real
HTTPS: the resumed runners' events LISTs stay within a bound at once (gateway/clusters/replay.py), 429s with
Retry-After are waited out, and nothing is lost or repeated: every event (those the dead gateway held included)
journalled once, every log line once and in order, one pod per request.

The simulated API server answers every request after 50 ms during the restart (so requests overlap as they would
at a busy API server, and its peaks in flight show the burst) and throttles the first two events LISTs (429,
Retry-After 1 s). The crash is the gateway stopped with its held items dropped first (tests/e2e/test_held_events.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc

from gateway import domain
from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.clusters.replay import RESUME_CONCURRENCY
from gateway.sim.events import EventRecorder
from tests.conftest import Database
from tests.e2e.conftest import eventually, gateway_settings, logs, result, sim_pod, virtual_world

PODS = 60
LINES = 12  # over the pod's 6 s: most pods still write lines after the restart
CLUSTER = "local-eu-cpu"
PROBE = "Readiness probe failed: connection refused"
THROTTLED = 2


def burst_pod(i: int) -> dispatch_pb2.PodRequest:
    annotations = {
        "sim.podgate.io/duration": "6",
        "sim.podgate.io/log-lines": "\n".join(f"line {n}" for n in range(LINES)),
    }
    container = {"name": "base", "image": "busybox:1.36", "command": ["true"]}
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "burst", "annotations": annotations},
                "spec": {"containers": [container]}}  # fmt: skip
    return dispatch_pb2.PodRequest(
        request_id=f"burst-{i:03d}", pod_json=json.dumps(manifest), placement=common_pb2.Placement(clusters=[CLUSTER])
    )


async def crash(gw: Gateway, request_ids: list[str]) -> dict[str, list[str]]:
    """The process dies: what its journal held is never written. Returns the events it held, per request."""
    held = {r: [str(getattr(i, "reason", "")) for i in gw.journal.held(r) if isinstance(i, domain.KubernetesEvent)]
            for r in request_ids}  # fmt: skip
    gw.journal.drop_pending(request_ids)
    await gw.dispatcher.close()  # its runners stop before they write anything more
    await gw.stop()
    return held


async def all_running(gw: Gateway, request_ids: list[str]) -> list[domain.PodRecord] | None:
    records = [await gw.store.get_pod_record(r) for r in request_ids]
    if all(r is not None and r.phase is domain.PodPhase.RUNNING for r in records):
        return [r for r in records if r is not None]
    return None


async def watched(stub: dispatch_pb2_grpc.DispatchServiceStub, request_id: str) -> list[dispatch_pb2.PodEvent]:
    """The request's whole journal, from its first item to its result."""
    watch = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id), timeout=60)
    return [r.event async for r in watch]


async def test_a_restart_with_many_pods_in_flight_keeps_its_events_lists_within_a_bound_and_loses_nothing(
    tmp_path: Path, database: Database
) -> None:
    async with virtual_world(tmp_path) as world:
        raw: dict[str, Any] = {"clusters": {"files": [str(tmp_path / "virtual-clusters.yaml")]}}
        if database.backend == "postgres":
            raw["database"] = {"url": database.url}
        config = gateway_settings(tmp_path, raw)
        ids = [f"burst-{i:03d}" for i in range(PODS)]
        sim = world.clusters[CLUSTER]
        gw = await start_gateway(config)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
                stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
                await asyncio.gather(*(stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=burst_pod(i))) for i in range(PODS)))
            records = await eventually(lambda: all_running(gw, ids), within=60)
            recorder = EventRecorder(sim.store, "kubelet")
            for record in records:  # a warning per pod that its runner holds (SQLite) or has just written
                pod = sim_pod(world, CLUSTER, record.name)
                assert pod is not None
                recorder.record(pod, "Warning", "Unhealthy", PROBE)
            if database.backend == "sqlite":  # the only writer holds events with the lines: up to 5 s
                seen = lambda: sum(  # noqa: E731
                    any(getattr(i, "reason", "") == "Unhealthy" for i in gw.journal.held(r)) for r in ids
                ) >= PODS // 4
                await eventually(seen, every=0.02)
        except BaseException:
            await gw.stop()
            raise
        held = await crash(gw, ids)
        creates = sim.request_counts().get(("create", "pods"), 0)
        sim.faults.reset_counters()
        sim.set_faults(latency=0.05, retry_after=1)
        sim.throttle_requests("list", "events", THROTTLED)
        gw = await start_gateway(config)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
                stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
                journals = await asyncio.gather(*(watched(stub, r) for r in ids))
        finally:
            await gw.stop()
            sim.set_faults(latency=0)
    if database.backend == "sqlite":
        assert sum("Unhealthy" in reasons for reasons in held.values()) >= PODS // 4, held  # died holding them
    for request_id, events in zip(ids, journals, strict=True):
        assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED, request_id
        assert logs(events) == [f"line {n}" for n in range(LINES)], request_id
        streamed = [e.kubernetes_event.reason for e in events if e.WhichOneof("event") == "kubernetes_event"]
        assert len(streamed) == len(set(streamed)), (request_id, streamed)  # each once
        assert {"Scheduled", "Pulled", "Created", "Started", "Unhealthy"} <= set(streamed), (request_id, streamed)
        assert [(w.reason, w.message) for w in result(events).warning_events] == [("Unhealthy", PROBE)]
    assert creates == PODS and sim.request_counts().get(("create", "pods"), 0) == 0  # no pod made again
    # The bound: the rounds' LISTs, and the events watch's own beside them (before: one a pod, at once). How
    # many LISTs in all depends on how the runners arrive (one that comes alone gets its own), so it is shown.
    listed = sim.request_counts().get(("list", "events"), 0)
    assert sim.faults.peak("list", "events") <= RESUME_CONCURRENCY + 1, (listed, sim.faults.snapshot()["peaks"])
    assert sim.faults.answered_429 == THROTTLED  # waited out (Retry-After), nothing lost for it
