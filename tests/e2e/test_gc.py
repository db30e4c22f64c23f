"""The garbage collector end to end: gateway pods no live request owns are deleted past their TTL; no other pod is."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway
from gateway.pods import builder
from gateway.pods.dispatcher import Dispatcher
from gateway.settings import LiveSettings
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import eventually, logs, pod_request, result, run_to_end, sim_pod

CLUSTER = "local-eu-cpu"
TTL = 1.5


def sim_pod_body(name: str, *, request_id: str = "", owned: bool = True) -> dict[str, Any]:
    """A pod made directly in the simulator, labelled as the gateway's builder labels its pods (when `owned`)."""
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if owned:
        metadata["labels"] = {
            builder.MANAGED_BY_LABEL: "podgate",
            builder.REQUEST_ID_LABEL: builder.request_id_label(request_id),
        }
        metadata["annotations"] = {builder.REQUEST_ID_ANNOTATION: request_id, builder.CLUSTER_ANNOTATION: CLUSTER}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "base", "image": "python:3.12", "command": ["python", "-c", "import time; time.sleep(8)"]}
            ],
        },
    }


def alive(world: SimWorld, name: str) -> bool:
    """The pod exists and nobody asked to delete it."""
    pod = sim_pod(world, CLUSTER, name)
    return pod is not None and not pod["metadata"].get("deletionTimestamp")


def running(world: SimWorld, name: str) -> bool:
    return ((sim_pod(world, CLUSTER, name) or {}).get("status") or {}).get("phase") == "Running"


async def test_orphans_past_their_ttl_are_deleted_and_nothing_else(
    gateway: Gateway, stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    store = world.clusters[CLUSTER].store
    current = gateway.settings.current
    collector = Dispatcher(
        gateway.store,
        gateway.registry,
        gateway.journal,
        LiveSettings(replace(current, dispatch=replace(current.dispatch, orphan_ttl_seconds=TTL))),
    )
    kept = pod_request(
        "print('kept')",
        regions=("eu-central-1",),
        lifecycle=dispatch_pb2.LifecycleOptions(on_finish=dispatch_pb2.ON_FINISH_ACTION_KEEP_POD),
    )
    assert result(await run_to_end(stub, kept)).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    live = pod_request(
        "import time\nfor i in range(60):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.1)",
        regions=("eu-central-1",),
    )
    call = stub.RunPod(dispatch_pb2.RunPodRequest(pod=live), timeout=60)
    seen = []
    async for r in call:
        seen.append(r.event)
        if r.event.WhichOneof("event") == "log":
            break
    store.create("pods", sim_pod_body("ghost-old", request_id="request-that-never-was"))
    store.create("pods", sim_pod_body("stray-old", request_id=live.request_id))  # not the pod the record names
    store.create("pods", sim_pod_body("foreign-old", owned=False))
    await asyncio.sleep(TTL + 1.0)  # creation times have second precision
    store.create("pods", sim_pod_body("ghost-young", request_id="another-request-that-never-was"))
    everyone = ("ghost-old", "stray-old", "foreign-old", "ghost-young")
    for name in everyone:
        await eventually(lambda n=name: running(world, n))
    await eventually(lambda: len(gateway.registry.get(CLUSTER).owned_pods()) == 5)

    assert await collector.collect_garbage() == 2
    assert not alive(world, "ghost-old") and not alive(world, "stray-old")
    assert alive(world, "foreign-old") and alive(world, "ghost-young")
    names = {(await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=r.request_id))).pod.name for r in (kept, live)}
    assert all(alive(world, n) for n in names), "a live request's pod and a kept pod stay"

    seen += [r.event async for r in call]
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert logs(seen) == [f"tick {i}" for i in range(60)]

    await collector.collect_garbage()  # ghost-young is past its TTL by now
    assert not alive(world, "ghost-young")
    kept_name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=kept.request_id))).pod.name
    assert alive(world, kept_name) and alive(world, "foreign-old")


async def test_submitting_a_finished_request_again_keeps_nothing_of_it_in_memory(
    gateway: Gateway, stub: dispatch_pb2_grpc.DispatchServiceStub
) -> None:
    request = pod_request("print('once')", regions=("eu-central-1",))
    assert result(await run_to_end(stub, request)).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    await eventually(lambda: not gateway.journal.holds(request.request_id))
    for _ in range(3):
        again = await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
        assert not again.created and again.pod.phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert not gateway.journal.holds(request.request_id)
