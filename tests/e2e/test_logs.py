"""Logs end to end: which containers, tagged lines, a cut stream resumed exactly, replay after the pod is gone."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import (
    API_PROTOCOLS,
    container,
    logs,
    pod_json,
    pod_request,
    request_for,
    result,
    run_to_end,
    sim_pod,
    violations,
    went_over,
)


def printing(prefix: str, n: int) -> str:
    return f"import time\nfor i in range({n}):\n    print(f'{prefix} {{i}}', flush=True)\n    time.sleep(0.02)"


def three_container_pod() -> str:
    return pod_json(
        [container("base", printing("main", 3)), container("side", printing("side", 3))],
        init=[container("setup", printing("init", 2))],
    )


def tagged(events: list[dispatch_pb2.PodEvent]) -> dict[str, list[str]]:
    """Log lines by container, in stream order."""
    out: dict[str, list[str]] = {}
    for e in events:
        if e.WhichOneof("event") == "log":
            out.setdefault(e.log.container, []).append(e.log.text)
    return out


@pytest.mark.parametrize(
    ("selection", "named", "expected"),
    [
        (
            dispatch_pb2.LOG_SELECTION_ALL,
            [],
            {
                "setup": ["init 0", "init 1"],
                "base": ["main 0", "main 1", "main 2"],
                "side": ["side 0", "side 1", "side 2"],
            },
        ),
        (dispatch_pb2.LOG_SELECTION_NAMED, ["side"], {"side": ["side 0", "side 1", "side 2"]}),
        (dispatch_pb2.LOG_SELECTION_UNSPECIFIED, [], {"base": ["main 0", "main 1", "main 2"]}),
        (dispatch_pb2.LOG_SELECTION_NONE, [], {}),
    ],
    ids=["all", "named", "main-by-default", "none"],
)
async def test_log_selection_streams_the_chosen_containers_each_line_tagged(
    stub: dispatch_pb2_grpc.DispatchServiceStub, selection: int, named: list[str], expected: dict[str, list[str]]
) -> None:
    request = request_for(three_container_pod(), logs=dispatch_pb2.LogOptions(selection=selection, containers=named))
    events = await run_to_end(stub, request)
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert tagged(events) == expected
    times = [e.log.time.ToNanoseconds() for e in events if e.WhichOneof("event") == "log"]
    assert all(times), "every line carries the kubelet's timestamp"


@API_PROTOCOLS
async def test_log_stream_cut_during_an_output_burst_loses_and_repeats_no_line(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, api_protocol: str
) -> None:
    """The cluster's API server goes away while the pod prints thousands of lines; the gateway resumes the stream.

    The first hundred lines come at once, then the pod holds still for 3 s so the outage (started when the
    first line reaches the test) surely cuts an open stream even on a loaded machine, then the rest follow."""
    burst = (
        "import sys, time\n"
        "for i in range(3000):\n"
        "    print(f'line {i}')\n"
        "    if i % 100 == 99:\n"
        "        sys.stdout.flush()\n"
        "        time.sleep(3 if i == 99 else 0.03)\n"
    )
    cluster = world.clusters["local-eu-cpu"]
    request = pod_request(burst, regions=("eu-central-1",))
    seen: list[dispatch_pb2.PodEvent] = []
    async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60):
        seen.append(r.event)
        if r.event.WhichOneof("event") == "log" and not cluster.faults.outage and len(logs(seen)) == 1:
            await cluster.outage()
            await asyncio.sleep(0.5)
            await cluster.restore()
    assert result(seen).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert logs(seen) == [f"line {i}" for i in range(3000)]
    assert cluster.request_counts().get(("get", "pods/log"), 0) >= 2, "the log stream was cut and reopened"
    assert went_over(world, "local-eu-cpu", api_protocol)


@pytest.mark.parametrize(
    "on_finish",
    [dispatch_pb2.ON_FINISH_ACTION_KEEP_POD, dispatch_pb2.ON_FINISH_ACTION_DELETE_POD],
    ids=["keep", "delete"],
)
async def test_watch_from_the_start_after_the_pod_finished_replays_everything(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, on_finish: int
) -> None:
    request = pod_request(
        printing("tick", 5), regions=("eu-central-1",), lifecycle=dispatch_pb2.LifecycleOptions(on_finish=on_finish)
    )
    live = await run_to_end(stub, request)
    name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.name
    pod = sim_pod(world, "local-eu-cpu", name)
    if on_finish == dispatch_pb2.ON_FINISH_ACTION_KEEP_POD:
        assert pod is not None and pod["status"]["phase"] == "Succeeded"
    else:
        assert pod is None or pod["metadata"].get("deletionTimestamp")
    replay = [
        r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request.request_id), timeout=30)
    ]
    assert replay == live
    assert logs(replay) == [f"tick {i}" for i in range(5)]


async def test_naming_a_container_the_pod_lacks_is_invalid_argument(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    request = request_for(
        three_container_pod(),
        logs=dispatch_pb2.LogOptions(selection=dispatch_pb2.LOG_SELECTION_NAMED, containers=["side", "sidecar"]),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    described = violations(caught.value)
    assert list(described) == ["pod.logs.containers"]
    assert "'sidecar'" in described["pod.logs.containers"] and "side" in described["pod.logs.containers"]
    assert sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values()) == 0


async def test_a_line_longer_than_the_runtimes_16_kib_records_comes_back_whole(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    """The runtime stores it as partial records, and the kubelet stamps each one inside the line."""
    code = "print('before'); print(''.join(chr(97 + i % 26) for i in range(40000))); print('é' * 9000); print('after')"
    events = await run_to_end(stub, pod_request(code))
    assert logs(events) == ["before", "".join(chr(97 + i % 26) for i in range(40000)), "é" * 9000, "after"]
