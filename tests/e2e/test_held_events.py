"""Kubernetes events held for the request's next write (gateway/pods/journal.py `hold`), end to end on the
simulator: a gateway that dies holding one loses nothing and repeats nothing, because the restarted runner
lists its pod's events again (gateway/pods/following.py `_replay_events`).

The crash is the gateway stopped with its held items dropped first (what a SIGKILL leaves of them: nothing);
its runners are stopped before anything else can write.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from gateway import domain
from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.sim.cluster import SimWorld
from gateway.sim.events import EventRecorder
from tests.e2e.conftest import (
    API_PROTOCOLS,
    api_protocol_settings,
    eventually,
    gateway_settings,
    logs,
    pod_request,
    result,
    sim_pod,
)

PROBE = "Readiness probe failed: connection refused"


async def crash(gw: Gateway, request_id: str) -> None:
    """The process dies: what its journal held for the request is never written."""
    gw.journal.drop_pending([request_id])
    await gw.dispatcher.close()  # its runners stop before they write anything more
    await gw.stop()


async def journalled_reasons(gw: Gateway, request_id: str) -> list[str]:
    return [
        str(event.payload.get("reason"))
        for _, event in await gw.store.read_events(request_id)
        if event.kind is domain.JournalKind.K8S_EVENT
    ]


@API_PROTOCOLS
async def test_an_event_held_when_the_gateway_died_is_journalled_once_after_its_restart(
    world: SimWorld, tmp_path: Path, api_protocol: str
) -> None:
    config = gateway_settings(tmp_path, api_protocol_settings(api_protocol))
    # Running for 5 s: the event must be seen and held before the result (or the lines' 5 s hold) writes it.
    request = pod_request("import time; print('up', flush=True); time.sleep(5)")
    request_id = request.request_id
    gw = await start_gateway(config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))  # nobody watches: events are held

        async def stored_running() -> domain.PodRecord | None:
            record = await gw.store.get_pod_record(request_id)
            return record if record is not None and record.phase is domain.PodPhase.RUNNING else None

        record = await eventually(stored_running)
        pod = sim_pod(world, record.cluster, record.name)
        assert pod is not None
        EventRecorder(world.clusters[record.cluster].store, "kubelet").record(pod, "Warning", "Unhealthy", PROBE)
        held = lambda: any(getattr(i, "reason", "") == "Unhealthy" for i in gw.journal.held(request_id))  # noqa: E731
        await eventually(held, every=0.02)
    except BaseException:
        await gw.stop()
        raise
    await crash(gw, request_id)
    gw = await start_gateway(config)
    try:
        assert "Unhealthy" not in await journalled_reasons(gw, request_id)  # it died with the event
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            watch = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id), timeout=30)
            events = [r.event async for r in watch]
    finally:
        await gw.stop()
    final = result(events)
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and logs(events) == ["up"]
    streamed = [e.kubernetes_event.reason for e in events if e.WhichOneof("event") == "kubernetes_event"]
    assert streamed.count("Unhealthy") == 1 and len(streamed) == len(set(streamed)), streamed
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(streamed), streamed
    assert [(e.reason, e.message) for e in final.warning_events] == [("Unhealthy", PROBE)]
    assert sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values()) == 1
