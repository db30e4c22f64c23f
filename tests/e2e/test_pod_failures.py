"""Pods that fail, end to end: each ends with the right reason, exit code and the pod's warning events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import duration_pb2

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import (
    container,
    eventually,
    gateway_settings,
    logs,
    pod_json,
    request_for,
    result,
    run_to_end,
    serving,
    sim_pod,
    warnings,
    write_cluster_file,
)

MISSING_IMAGE = "registry.example.com/acme/missing:1.0"
FAILED = dispatch_pb2.POD_PHASE_FAILED


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    """The local clusters, with an image their registry does not have."""
    runtime = {"missingImages": ["registry.example.com/acme/missing*"], "imagePullBackoffSeconds": 0.2}
    path = write_cluster_file(tmp_path / "clusters.yaml", runtime=runtime)
    async with SimWorld.from_file(path, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as w:
        yield w


def startup(seconds: float) -> dispatch_pb2.LifecycleOptions:
    timeout = duration_pb2.Duration()
    timeout.FromNanoseconds(int(seconds * 1e9))
    return dispatch_pb2.LifecycleOptions(startup_timeout=timeout)


async def test_missing_image_fails_at_once_with_the_pull_error_and_its_warnings(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    manifest = pod_json([{"name": "base", "image": MISSING_IMAGE, "command": ["true"]}])
    final = result(await run_to_end(stub, request_for(manifest, lifecycle=startup(30))))
    assert final.phase == FAILED
    assert final.reason in ("ErrImagePull", "ImagePullBackOff")
    assert MISSING_IMAGE in final.message and "base" in final.message
    assert final.exit_code == -1
    assert "Failed" in warnings(final)
    assert any(MISSING_IMAGE in e.message for e in final.warning_events)


async def test_memory_limit_exceeded_is_oom_killed(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    hog = container(
        "base",
        "print('allocating', flush=True); b = bytearray(400 * 2**20)",
        resources={"limits": {"memory": "64Mi", "cpu": "500m"}},
    )
    events = await run_to_end(stub, request_for(pod_json([hog])))
    final = result(events)
    assert (final.phase, final.reason, final.exit_code) == (FAILED, "OOMKilled", 137)
    assert [(c.name, c.reason) for c in final.containers] == [("base", "OOMKilled")]
    assert "allocating" in logs(events)


async def test_active_deadline_ends_the_pod_as_deadline_exceeded(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    manifest = pod_json(
        [container("base", "import time; print('working', flush=True); time.sleep(30)")],
        activeDeadlineSeconds=1,
        terminationGracePeriodSeconds=0,
    )
    events = await run_to_end(stub, request_for(manifest))
    final = result(events)
    assert (final.phase, final.reason) == (FAILED, "DeadlineExceeded")
    assert "deadline" in final.message
    assert "DeadlineExceeded" in warnings(final)
    assert "working" in logs(events)


async def test_pod_the_scheduler_cannot_place_is_unschedulable_at_the_startup_timeout(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    """Placement weighs cpu, memory and GPUs only; the cluster's scheduler also counts extended resources."""
    wants_fpga = container("base", "print('never')", resources={"limits": {"example.com/fpga": "1"}})
    request = request_for(pod_json([wants_fpga]), regions=("eu-central-1",), lifecycle=startup(1.5))
    events = await run_to_end(stub, request)
    final = result(events)
    assert (final.phase, final.reason, final.exit_code) == (FAILED, "Unschedulable", -1)
    assert "did not start within 1.5s" in final.message and "example.com/fpga" in final.message
    assert "FailedScheduling" in warnings(final)
    assert logs(events) == []
    name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.name
    await eventually(lambda: sim_pod(world, "local-eu-cpu", name) is None, within=10)


async def test_pod_stuck_pending_ends_with_startup_timeout(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    """Scheduled, but an init container keeps the pod Pending past the startup timeout."""
    manifest = pod_json(
        [container("base", "print('never')")],
        init=[container("slow-init", "import time; time.sleep(30)")],
        terminationGracePeriodSeconds=0,
    )
    request = request_for(manifest, regions=("eu-central-1",), lifecycle=startup(1.5))
    final = result(await run_to_end(stub, request))
    assert (final.phase, final.reason, final.exit_code) == (FAILED, "StartupTimeout", -1)
    assert "did not start within 1.5s" in final.message
    name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.name
    pod = sim_pod(world, "local-eu-cpu", name)
    assert pod is None or pod["metadata"].get("deletionTimestamp"), "the timed-out pod is being deleted"


async def run_disturbed(
    stub: dispatch_pb2_grpc.DispatchServiceStub, disturb: Callable[[str], Awaitable[None]]
) -> list[Any]:
    """Every event of a pod that prints a tick every 50 ms on local-eu-cpu, `disturb`ed (given the pod's
    name) once its log shows it running."""
    code = "import time\nfor i in range(300):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.05)"
    request = request_for(pod_json([container("base", code)]), regions=("eu-central-1",))
    seen = []
    async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60):
        seen.append(r.event)
        if r.event.WhichOneof("event") == "log" and r.event.log.text == "tick 2":
            await disturb((await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.name)
    return seen


async def test_node_lost_while_running(stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld) -> None:
    async def fail_its_node(name: str) -> None:
        pod = sim_pod(world, "local-eu-cpu", name)
        assert pod is not None
        await world.clusters["local-eu-cpu"].fail_node(pod["spec"]["nodeName"])

    seen = await run_disturbed(stub, fail_its_node)
    final = result(seen)
    assert (final.phase, final.reason) == (FAILED, "NodeLost")
    assert "unresponsive" in final.message
    assert final.exit_code == 137
    ticks = logs(seen)
    assert ticks == [f"tick {i}" for i in range(len(ticks))] and len(ticks) < 300


async def test_crash_by_signal_reports_its_exit_code(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    code = "import ctypes; print('about to crash', flush=True); ctypes.string_at(0)"  # a real segmentation fault
    events = await run_to_end(stub, request_for(pod_json([container("base", code)])))
    final = result(events)
    assert (final.phase, final.exit_code, final.reason) == (FAILED, 139, "Error")
    assert [(c.name, c.exit_code) for c in final.containers] == [("base", 139)]
    assert not final.HasField("xcom_json")
    assert "about to crash" in logs(events)


async def test_init_container_failure_fails_the_pod_naming_the_init_container(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    manifest = pod_json(
        [container("base", "print('main never runs')")],
        init=[container("prepare", "import sys; print('cannot prepare', flush=True); sys.exit(4)")],
    )
    request = request_for(manifest, logs=dispatch_pb2.LogOptions(selection=dispatch_pb2.LOG_SELECTION_ALL))
    events = await run_to_end(stub, request)
    final = result(events)
    assert final.phase == FAILED and final.exit_code == -1
    assert [(c.name, c.exit_code) for c in final.containers] == [("prepare", 4)]
    assert "init container prepare exited with code 4" in final.message
    assert [(e.log.container, e.log.text) for e in events if e.WhichOneof("event") == "log"] == [
        ("prepare", "cannot prepare")
    ]


@pytest.mark.parametrize("while_", ["running", "pending"])
async def test_pod_deleted_while_the_gateway_is_down_ends_as_deleted_and_is_not_recreated(
    world: SimWorld, tmp_path: Path, while_: str
) -> None:
    ticks = "import time\nfor i in range(600):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.05)"
    init = [container("slow-init", "import time; time.sleep(60)")] if while_ == "pending" else None
    manifest = pod_json([container("base", ticks)], init=init, terminationGracePeriodSeconds=0)
    request = request_for(manifest, regions=("eu-central-1",), lifecycle=startup(60))
    cluster = world.clusters["local-eu-cpu"]
    config = gateway_settings(tmp_path)
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
        get = dispatch_pb2.GetPodRequest(request_id=request.request_id)
        pod = await eventually(lambda: _placed(stub.GetPod(get)))
        wanted = "Running" if while_ == "running" else "Pending"
        await eventually(
            lambda: ((sim_pod(world, "local-eu-cpu", pod.name) or {}).get("status") or {}).get("phase") == wanted
        )
    cluster.store.delete("pods", "default", pod.name, grace_seconds=0)
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        watch = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request.request_id), timeout=20)
        final = result([r.event async for r in watch])
    assert (final.phase, final.reason) == (FAILED, "PodDeleted")
    assert cluster.request_counts().get(("create", "pods")) == 1, "the deleted pod is not created again"
    assert sim_pod(world, "local-eu-cpu", pod.name) is None


async def _placed(call: Any) -> dispatch_pb2.Pod | None:
    pod = (await call).pod
    return pod if pod.name and pod.phase != dispatch_pb2.POD_PHASE_QUEUED else None


async def test_warnings_seen_before_a_gateway_restart_are_in_the_result_once(world: SimWorld, tmp_path: Path) -> None:
    wants_fpga = container("base", "print('never')", resources={"limits": {"example.com/fpga": "1"}})
    request = request_for(pod_json([wants_fpga]), regions=("eu-central-1",), lifecycle=startup(2.5))
    config = gateway_settings(tmp_path)
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
        async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request.request_id), timeout=20):
            if r.event.WhichOneof("event") == "kubernetes_event":
                break
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        watch = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request.request_id), timeout=20)
        events = [r.event async for r in watch]
    final = result(events)
    assert (final.phase, final.reason) == (FAILED, "Unschedulable")
    assert [e.reason for e in final.warning_events] == ["FailedScheduling"]
    streamed = [
        (e.kubernetes_event.reason, e.kubernetes_event.count)
        for e in events
        if e.WhichOneof("event") == "kubernetes_event"
    ]
    assert len(streamed) == len(set(streamed)), f"no event is streamed twice: {streamed}"


async def test_eviction_under_node_pressure_is_reported_with_its_warning(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    async def evict(name: str) -> None:
        world.clusters["local-eu-cpu"].kubelet.evict("default", name, "The node was low on resource: memory.")

    final = result(await run_disturbed(stub, evict))
    assert (final.phase, final.reason) == (FAILED, "Evicted")
    assert "low on resource: memory" in final.message
    assert "Evicted" in warnings(final)


async def test_a_pod_the_api_server_refuses_fails_with_its_message(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    """A 422 at create is the pod's own fault: reported with Kubernetes' words, not retried elsewhere.

    The gateway validates every Pod against the schema and the API server's rules before placing it, so
    the 422 comes from a rule it cannot know (a cluster's policy, switched on in the simulator)."""
    for cluster in world.clusters.values():
        cluster.set_faults(refuse_pods="hostPath volumes are not allowed by this cluster's policy")
    events = await run_to_end(stub, request_for(pod_json([{"name": "base", "image": "busybox"}])))
    final = result(events)
    assert final.phase == dispatch_pb2.POD_PHASE_FAILED and final.reason == "Rejected", final
    assert "refused the pod" in final.message and "422" in final.message
    assert "not allowed by this cluster's policy" in final.message
