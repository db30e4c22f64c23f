"""ListPods, GetPod, WatchPod and CancelPod at their edges: filters, pagination, unknown ids, foreign cursors."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import logs, pod_request, python_pod, result, run_to_end, violations

SUCCEEDED, FAILED = dispatch_pb2.POD_PHASE_SUCCEEDED, dispatch_pb2.POD_PHASE_FAILED


def airflow(dag_id: str, task_id: str) -> dispatch_pb2.AirflowContext:
    return dispatch_pb2.AirflowContext(dag_id=dag_id, task_id=task_id, run_id="manual__1", map_index=-1, try_number=1)


@pytest.fixture
async def finished(stub: dispatch_pb2_grpc.DispatchServiceStub) -> list[str]:
    """Five finished requests, submitted in this order (ListPods returns the newest first)."""
    requests = [
        pod_request("print(1)", request_id="a1", regions=("eu-central-1",), airflow=airflow("dag-a", "t1")),
        pod_request("print(2)", request_id="a2", regions=("eu-central-1",), airflow=airflow("dag-a", "t2")),
        pod_request("import sys; sys.exit(2)", request_id="b1", regions=("eu-west-1",), airflow=airflow("dag-b", "t")),
        pod_request("print(3)", request_id="c1", regions=("eu-central-1",)),
        pod_request("print(4)", request_id="d1", regions=("us-east-1",)),
    ]
    for r in requests:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=r))

    async def end(request_id: str) -> None:
        watch = stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id), timeout=60)
        result([r.event async for r in watch])

    await asyncio.gather(*(end(r.request_id) for r in requests))
    return [r.request_id for r in requests]


async def list_ids(stub: dispatch_pb2_grpc.DispatchServiceStub, **filters: object) -> list[str]:
    listed = await stub.ListPods(dispatch_pb2.ListPodsRequest(**filters))  # type: ignore[arg-type]
    return [p.request_id for p in listed.pods]


async def test_list_filters_by_cluster_phase_and_dag(
    stub: dispatch_pb2_grpc.DispatchServiceStub, finished: list[str]
) -> None:
    assert await list_ids(stub) == finished[::-1]
    assert await list_ids(stub, cluster="local-eu-cpu") == ["c1", "a2", "a1"]
    assert await list_ids(stub, phases=[FAILED]) == ["b1"]
    assert set(await list_ids(stub, phases=[SUCCEEDED, FAILED])) == set(finished)
    assert await list_ids(stub, phases=[dispatch_pb2.POD_PHASE_RUNNING]) == []
    assert await list_ids(stub, dag_id="dag-a") == ["a2", "a1"]
    assert await list_ids(stub, dag_id="dag-a", cluster="local-eu-gpu") == []
    assert await list_ids(stub, dag_id="dag-b", phases=[FAILED], cluster="local-eu-gpu") == ["b1"]
    listed = await stub.ListPods(dispatch_pb2.ListPodsRequest(dag_id="dag-b"))
    pod = listed.pods[0]
    assert (pod.airflow.dag_id, pod.airflow.task_id, pod.cluster, pod.result.exit_code) == (
        "dag-b",
        "t",
        "local-eu-gpu",
        2,
    )


async def test_pages_cover_every_record_once_in_order(
    stub: dispatch_pb2_grpc.DispatchServiceStub, finished: list[str]
) -> None:
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await stub.ListPods(dispatch_pb2.ListPodsRequest(page_size=2, page_token=token))
        pages.append([p.request_id for p in page.pods])
        token = page.next_page_token
        if not token:
            break
    assert pages == [["d1", "c1"], ["b1", "a2"], ["a1"]]
    filtered = await stub.ListPods(dispatch_pb2.ListPodsRequest(page_size=2, cluster="local-eu-cpu"))
    rest = await stub.ListPods(
        dispatch_pb2.ListPodsRequest(page_size=2, cluster="local-eu-cpu", page_token=filtered.next_page_token)
    )
    assert [p.request_id for p in filtered.pods] == ["c1", "a2"]
    assert [p.request_id for p in rest.pods] == ["a1"] and not rest.next_page_token


@pytest.mark.parametrize(
    "request_",
    [dispatch_pb2.ListPodsRequest(page_size=5000), dispatch_pb2.ListPodsRequest(page_token="not-a-token")],
    ids=["page-size", "page-token"],
)
async def test_bad_list_arguments_are_invalid_argument(
    stub: dispatch_pb2_grpc.DispatchServiceStub, request_: dispatch_pb2.ListPodsRequest
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListPods(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_ids_and_foreign_cursors(
    stub: dispatch_pb2_grpc.DispatchServiceStub, finished: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="never-submitted"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never-submitted" in (unknown.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="has spaces"))
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in violations(malformed.value)

    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        async for _ in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="a1", cursor="resume-token-42")):
            pass
    assert foreign.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cursor" in violations(foreign.value)

    with pytest.raises(grpc.aio.AioRpcError) as unwatched:
        async for _ in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id="never-submitted")):
            pass
    assert unwatched.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as long_reason:
        await stub.CancelPod(dispatch_pb2.CancelPodRequest(request_id="a1", reason="x" * 1001))
    assert long_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(long_reason.value) == {"reason": "at most 1000 characters"}

    with pytest.raises(grpc.aio.AioRpcError) as malformed_header:  # an open gateway reads no auth context,
        await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="a1"), metadata=(("authorization", "Basic abc"),))
    assert malformed_header.value.code() == grpc.StatusCode.UNAUTHENTICATED  # but still refuses a bad header

    before = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id="a1"))).pod
    after = (await stub.CancelPod(dispatch_pb2.CancelPodRequest(request_id="a1", reason="too late"))).pod
    assert after.phase == before.phase == SUCCEEDED and after.result == before.result


async def test_a_pod_runs_in_an_allowed_namespace_and_a_forbidden_one_is_refused_with_the_reason(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    manifest = json.loads(python_pod("print('in airflow')"))
    manifest["metadata"]["namespace"] = "airflow"
    request = pod_request("", regions=("eu-central-1",))
    request.pod_json = json.dumps(manifest)
    events = await run_to_end(stub, request)
    assert result(events).phase == SUCCEEDED and logs(events) == ["in airflow"]
    pod = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod
    assert pod.namespace == "airflow"
    assert not [
        p
        for p in world.clusters["local-eu-cpu"].store.list("pods", None)[0]
        if p["metadata"]["name"] == pod.name and not p["metadata"].get("deletionTimestamp")
    ]

    manifest["metadata"]["namespace"] = "kube-system"
    refused = pod_request("", regions=("eu-central-1",))
    refused.pod_json = json.dumps(manifest)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=refused))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "namespace kube-system is not allowed" in (caught.value.details() or "")
