"""The dispatch core end to end: real gRPC into the gateway, real HTTPS into simulated clusters running real processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.sim.cluster import SimWorld
from gateway.store import SqlStore
from tests.e2e.conftest import eventually, gateway_settings, logs, pod_request, result, run_to_end, serving


def creates(world: SimWorld) -> int:
    return sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values())


XCOM_42 = 'print(42); open("/airflow/xcom/return.json", "w").write(json.dumps({"v": 42}))'


async def test_gpu_pod_in_eu_lands_on_eu_gpu_cluster_with_logs_and_xcom(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    request = pod_request(f"import json; {XCOM_42}", regions=("eu-west-1",), gpus=1)
    events = await run_to_end(stub, request)
    kinds = [e.WhichOneof("event") for e in events]
    placed = next(e.placed for e in events if e.WhichOneof("event") == "placed")
    assert placed.cluster == "local-eu-gpu" and placed.region == "eu-west-1"
    assert "42" in logs(events)
    final = result(events)
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and final.exit_code == 0
    assert json.loads(final.xcom_json) == {"v": 42}
    assert kinds.index("placed") < kinds.index("log") < kinds.index("result")
    cursors = [int(e.cursor[1:]) for e in events]
    assert cursors == sorted(set(cursors)), "cursors strictly increase"
    # A fleet this small has every cluster's verdict stored with the decision: the stream and GetPod carry it.
    assert [(v.cluster, v.chosen) for v in placed.verdicts if v.chosen] == [("local-eu-gpu", True)]
    assert len(placed.verdicts) == 3
    shown = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.placement
    verdicts = {v.cluster: v for v in shown.verdicts}
    assert [v.cluster for v in shown.verdicts if v.chosen] == ["local-eu-gpu"] and shown.reason == placed.reason
    assert list(shown.verdicts) == list(placed.verdicts)
    for other in ("local-us-gpu", "local-eu-cpu"):
        assert verdicts[other].verdict == dispatch_pb2.VERDICT_REJECTED
        assert "outside the allowed regions" in verdicts[other].reason


async def test_failing_pod_reports_exit_code_and_no_xcom(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    events = await run_to_end(stub, pod_request("import sys; print('bye'); sys.exit(3)"))
    final = result(events)
    assert (final.phase, final.exit_code, final.reason) == (dispatch_pb2.POD_PHASE_FAILED, 3, "Error")
    assert not final.HasField("xcom_json")
    assert "bye" in logs(events)


async def test_same_request_id_never_makes_a_second_pod(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    request = pod_request("import time; time.sleep(1); print('once')", request_id="idem-1")
    first, second = await asyncio.gather(
        stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request)),
        stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request)),
    )
    assert {first.created, second.created} == {True, False}
    assert first.pod.name == second.pod.name or not (first.pod.name and second.pod.name)
    events = [r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="idem-1"), timeout=60)]
    assert logs(events) == ["once"]
    created = sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values())
    assert created == 1
    # The pod's name and cluster are stored in the write that accepts the request, before the create.
    accepted = (first if first.created else second).pod
    assert accepted.name and accepted.cluster and accepted.phase == dispatch_pb2.POD_PHASE_QUEUED
    ran = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="idem-1"))).pod
    assert (ran.cluster, ran.name) == (accepted.cluster, accepted.name)


async def test_a_stored_request_is_answered_even_where_its_copy_would_now_be_refused(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    """The store is asked only when a submission is refused: a retry of a stored request is still its answer."""
    request = pod_request("print('once')", request_id="idem-2")
    first = await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    for changed in (
        pod_request("print('once')", request_id="idem-2", gpus=64),  # fits no node, ever
        pod_request("print('once')", request_id="idem-2", regions=("mars-1",)),  # no such region
    ):
        again = await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=changed))
        assert (again.created, again.pod.request_id) == (False, "idem-2")
        assert again.pod.create_time == first.pod.create_time
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # a new request asking the same is refused
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod_request("print('x')", gpus=64)))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_keep_name_uses_the_name_and_refuses_another_requests_pod(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    first = pod_request("import time; time.sleep(3)", regions=("eu-central-1",), keep_name=True)
    await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=first))
    second = pod_request("print('never')", regions=("eu-central-1",), keep_name=True)
    events = await run_to_end(stub, second)
    assert (result(events).phase, result(events).reason) == (dispatch_pb2.POD_PHASE_FAILED, "AlreadyExists")
    kept = await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=first.request_id))
    assert kept.pod.name == "e2e"
    assert creates(world) == 1  # refused before any create: the gateway knows the name is held
    pods = world.clusters["local-eu-cpu"].store.list("pods", None)[0]
    assert [p["metadata"]["annotations"]["podgate.io/request-id"] for p in pods if p["metadata"]["name"] == "e2e"] == [
        first.request_id
    ]


async def test_keep_name_never_adopts_a_foreign_pod_of_that_name(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "e2e", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "python:3.12", "command": ["sleep", "30"]}]},
    }
    world.clusters["local-eu-gpu"].store.create("pods", foreign)
    events = await run_to_end(stub, pod_request("print('never')", regions=("eu-west-1",), keep_name=True))
    assert (result(events).phase, result(events).reason) == (dispatch_pb2.POD_PHASE_FAILED, "AlreadyExists")
    still = world.clusters["local-eu-gpu"].store.get("pods", "default", "e2e")
    assert "podgate.io/request-id" not in (still["metadata"].get("annotations") or {})
    assert not still["metadata"].get("deletionTimestamp")


async def test_watch_resumes_from_a_cursor_without_gap_or_repeat(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    code = "import time\nfor i in range(30):\n    print(f'line {i}', flush=True)\n    time.sleep(0.01)"
    request = pod_request(code, request_id="resume-1")
    full = await run_to_end(stub, request)
    assert logs(full) == [f"line {i}" for i in range(30)]
    cut = next(i for i, e in enumerate(full) if e.WhichOneof("event") == "log" and e.log.text == "line 11")
    resumed = [
        r.event
        async for r in stub.WatchPod(
            dispatch_pb2.WatchPodRequest(request_id="resume-1", cursor=full[cut].cursor), timeout=30
        )
    ]
    assert resumed == full[cut + 1 :]


async def test_unsatisfiable_placement_is_failed_precondition_naming_each_cluster(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitPod(
            dispatch_pb2.SubmitPodRequest(pod=pod_request("print(1)", regions=("eu-central-1",), gpus=1))
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(caught.value)
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert {v.subject for v in failure.violations} == {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: setattr(r, "pod_json", "{not json"), "pod.pod_json"),
        (
            lambda r: setattr(
                r,
                "pod_json",
                json.dumps(
                    {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "base", "image": ""}]}}
                ),
            ),
            "pod.pod_json.spec.containers[0].image",
        ),
        (lambda r: r.placement.regions.append("mars-north-1"), "pod.placement.regions"),
        (lambda r: r.placement.clusters.append("no-such-cluster"), "pod.placement.clusters"),
        (
            lambda r: setattr(r.placement.cluster_selector, "expression", "tier in ("),
            "pod.placement.cluster_selector.expression",
        ),
    ],
    ids=["invalid-json", "empty-image", "unknown-region", "unknown-cluster", "bad-selector"],
)
async def test_bad_input_is_invalid_argument_with_field_violations(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, mutate: object, field: str
) -> None:
    request = pod_request("print(1)")
    mutate(request)  # type: ignore[operator]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert any(v.field.startswith(field) for v in bad.field_violations), bad
    assert sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values()) == 0


async def test_gateway_restart_mid_run_loses_nothing(world: SimWorld, tmp_path: object) -> None:
    from pathlib import Path

    from gateway.app import start_gateway
    config = gateway_settings(Path(str(tmp_path)))
    code = "import time\nfor i in range(20):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.1)"
    gw: Gateway = await start_gateway(config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod_request(code, request_id="restart-1")))
            seen = []
            async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="restart-1"), timeout=30):
                seen.append(r.event)
                if r.event.WhichOneof("event") == "log" and r.event.log.text == "tick 3":
                    break
    finally:
        await gw.stop()
    gw = await start_gateway(config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            rest = [
                r.event
                async for r in stub.WatchPod(
                    dispatch_pb2.WatchPodRequest(request_id="restart-1", cursor=seen[-1].cursor), timeout=60
                )
            ]
    finally:
        await gw.stop()
    assert logs(seen + rest) == [f"tick {i}" for i in range(20)]
    assert result(rest).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values()) == 1


async def test_a_cancel_stored_before_the_gateway_died_is_carried_out_at_once_after_its_restart(
    world: SimWorld, tmp_path: Path
) -> None:
    """CancelPod stores the cancel before acting on it; a gateway that dies in between (here: stopped, then
    the cancel stored as CancelPod stores it) cancels the pod when it restarts instead of resuming it."""
    config = gateway_settings(tmp_path)
    code = "import time\nfor i in range(600):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.1)"
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod_request(code, request_id="died-1")))
        async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="died-1"), timeout=30):
            if r.event.WhichOneof("event") == "log":
                break
    async with await SqlStore.open(config.database_url) as store:
        await store.request_cancel("died-1", "asked for just before the crash")
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        events = [r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="died-1"), timeout=20)]
    final = result(events)
    assert (final.phase, final.message) == (dispatch_pb2.POD_PHASE_CANCELLED, "asked for just before the crash")
    assert len(logs(events)) < 200  # cancelled as the gateway came back, not run on (600 lines)
    pods = [p for c in world.clusters.values() for p in c.store.list("pods", None)[0]]
    assert all("deletionTimestamp" in p["metadata"] for p in pods), pods
    assert sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values()) == 1


async def test_stopping_the_gateway_hands_open_streams_over(world: SimWorld, tmp_path: Path) -> None:
    """A follower is told UNAVAILABLE (reattach) as the gateway stops; from its cursor, the restarted gateway
    delivers the rest: every line once, one pod."""
    config = gateway_settings(tmp_path)
    code = "import time\nfor i in range(30):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.1)"
    seen: list[dispatch_pb2.PodEvent] = []
    gw = await start_gateway(config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)

        async def follow() -> None:
            request = dispatch_pb2.RunPodRequest(pod=pod_request(code, request_id="handover-1"))
            async for r in stub.RunPod(request, timeout=60):
                seen.append(r.event)

        reader = asyncio.create_task(follow())
        await eventually(lambda: "tick 3" in logs(seen))
        await gw.stop()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reader
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "reattach" in (caught.value.details() or "")
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        watch = dispatch_pb2.WatchPodRequest(request_id="handover-1", cursor=seen[-1].cursor)
        rest = [r.event async for r in stub.WatchPod(watch, timeout=60)]
    assert logs(seen + rest) == [f"tick {i}" for i in range(30)]
    assert sum(c.request_counts().get(("create", "pods"), 0) for c in world.clusters.values()) == 1


async def test_after_journal_retention_the_stored_result_still_answers(world: SimWorld, tmp_path: Path) -> None:
    config = gateway_settings(tmp_path, {"dispatch": {"journal_retention_seconds": 0}})
    async with serving(config) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        request = pod_request("print('kept')", request_id="retained-1")
        assert logs(await run_to_end(stub, request)) == ["kept"]
    gw = await start_gateway(config)

    async def closed() -> bool:
        record = await gw.store.get_pod_record("retained-1")
        return record is not None and record.finished_at is not None

    try:
        # the result reaches the client before the finish action closes the record: a gateway stopped in between
        # leaves that to the next start (resumed with only the finish action left), and retention skips it until then
        await eventually(closed)
        assert await gw.dispatcher.apply_retention() > 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            events = [
                r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="retained-1"), timeout=10)
            ]
            again = await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    finally:
        await gw.stop()
    assert [e.WhichOneof("event") for e in events] == ["result"]
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED and result(events).exit_code == 0
    assert not again.created, "the record outlives its journal: a late retry is not a second pod"
