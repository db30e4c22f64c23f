"""Stream and lifecycle contracts: where a WatchPod ends, who holds the disconnect policy, and that its
deadline outlives a gateway restart (issue 12)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import gateway_settings, logs, pod_request, result, run_to_end, serving

TICKS = "import time\nfor i in range({n}):\n    print(f'tick {{i}}', flush=True)\n    time.sleep(0.1)"
KEEP = dispatch_pb2.DISCONNECT_POLICY_KEEP_RUNNING
CANCEL = dispatch_pb2.DISCONNECT_POLICY_CANCEL


def lifecycle(policy: int, grace: float = 0.0) -> dispatch_pb2.LifecycleOptions:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(grace * 1e9))
    return dispatch_pb2.LifecycleOptions(on_disconnect=policy, reattach_grace=duration)


async def watch(
    stub: dispatch_pb2_grpc.DispatchServiceStub, request_id: str, cursor: str = "", deadline: float = 60
) -> list[dispatch_pb2.PodEvent]:
    call = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id, cursor=cursor), timeout=deadline)
    return [r.event async for r in call]


async def leave_after_first_line(call: grpc.aio.UnaryStreamCall) -> list[dispatch_pb2.PodEvent]:  # type: ignore[type-arg]
    seen = []
    async for response in call:
        seen.append(response.event)
        if response.event.WhichOneof("event") == "log":
            break
    call.cancel()
    return seen


async def phase_of(stub: dispatch_pb2_grpc.DispatchServiceStub, request_id: str) -> int:
    return int((await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request_id))).pod.phase)


# --- where a watch ends ---------------------------------------------------------------------------


async def test_watching_a_finished_request_from_its_result_repeats_the_result_at_once(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    request = pod_request("print('done')")
    events = await run_to_end(stub, request)
    request_id, last = request.request_id, events[-1]
    again = await watch(stub, request_id, last.cursor, deadline=5)  # it used to wait for the deadline
    assert [e.cursor for e in again] == [last.cursor]
    assert again[0].result == last.result
    middle = await watch(stub, request_id, events[-2].cursor, deadline=5)
    assert middle == [last]


async def test_a_cursor_the_request_never_had_is_out_of_range_and_names_the_last_one(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    request = pod_request("print('done')")
    events = await run_to_end(stub, request)
    past = f"c{int(events[-1].cursor[1:]) + 1}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(stub, request.request_id, past, deadline=5)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert repr(events[-1].cursor) in (caught.value.details() or "")


async def test_a_cursor_ahead_of_a_running_request_is_out_of_range(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    request = pod_request(TICKS.format(n=50))
    await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(stub, request.request_id, "c100000", deadline=5)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    await stub.CancelPod(dispatch_pb2.CancelPodRequest(request_id=request.request_id))


# --- who holds the disconnect policy -------------------------------------------------------------------


async def test_a_watcher_leaving_never_cancels_a_pod_it_did_not_run(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    request = pod_request(TICKS.format(n=20), lifecycle=lifecycle(CANCEL))
    await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    watcher = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request.request_id), timeout=60)
    await leave_after_first_line(watcher)
    rest = await watch(stub, request.request_id)
    assert result(rest).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert logs(rest) == [f"tick {i}" for i in range(20)]


async def test_a_plain_watcher_does_not_stop_the_grace_but_a_reattached_one_does_and_then_holds_it(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    request = pod_request(TICKS.format(n=300), lifecycle=lifecycle(KEEP, grace=1.5))
    seen = await leave_after_first_line(stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60))
    reattach = dispatch_pb2.WatchPodRequest(request_id=request.request_id, cursor=seen[-1].cursor, reattach=True)
    held = stub.WatchPod(reattach, timeout=60)
    async for response in held:  # holding it well past the grace: the pod keeps running
        if response.event.WhichOneof("event") == "log" and response.event.log.text == "tick 30":
            break
    assert await phase_of(stub, request.request_id) == dispatch_pb2.POD_PHASE_RUNNING
    held.cancel()  # the reattached client leaves too: the grace starts again, and a plain watch cannot stop it
    rest = await watch(stub, request.request_id)
    assert result(rest).phase == dispatch_pb2.POD_PHASE_CANCELLED
    assert "no client reattached within 2s" in result(rest).message


async def test_the_cancel_policy_is_exact_when_a_watcher_attaches_at_once(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    """The runner leaving cancels the pod even if a plain WatchPod (here: sent in the same breath) attaches
    before the gateway notices the runner left: a watcher is never taken for a reattach."""
    request = pod_request(TICKS.format(n=300), lifecycle=lifecycle(CANCEL))
    run = stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60)
    async for response in run:
        if response.event.WhichOneof("event") == "log":
            break
    watcher = asyncio.ensure_future(watch(stub, request.request_id))
    run.cancel()
    assert result(await watcher).phase == dispatch_pb2.POD_PHASE_CANCELLED


# --- the deadline outlives the gateway ----------------------------------------------------------------


async def test_a_grace_started_before_a_restart_cancels_the_pod_after_it(world: SimWorld, tmp_path: Path) -> None:
    config = gateway_settings(tmp_path)
    request = pod_request(TICKS.format(n=600), lifecycle=lifecycle(KEEP, grace=3))
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        await leave_after_first_line(stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60))
        await asyncio.sleep(0.5)  # the client is gone; the gateway stops inside the grace
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        rest = await watch(stub, request.request_id)  # a plain watcher: nobody reattached
        assert result(rest).phase == dispatch_pb2.POD_PHASE_CANCELLED
        assert "no client reattached within 3s" in result(rest).message
        assert len(logs(rest)) < 300  # cancelled within the grace, not run to its end


async def test_a_client_reattaching_to_the_restarted_gateway_keeps_its_pod(world: SimWorld, tmp_path: Path) -> None:
    config = gateway_settings(tmp_path)
    request = pod_request(TICKS.format(n=40), lifecycle=lifecycle(KEEP, grace=3))
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        seen = await leave_after_first_line(stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60))
        await asyncio.sleep(0.5)
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        reattach = dispatch_pb2.WatchPodRequest(request_id=request.request_id, cursor=seen[-1].cursor, reattach=True)
        rest = [r.event async for r in stub.WatchPod(reattach, timeout=60)]
    assert result(rest).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert logs(seen + rest) == [f"tick {i}" for i in range(40)]
