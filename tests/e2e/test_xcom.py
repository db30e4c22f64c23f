"""XCom end to end: /airflow/xcom/return.json comes back intact, or as a clear error; never silently wrong."""

from __future__ import annotations

import json

import pytest

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import eventually, pod_request, result, run_to_end, sim_pod

AUTO, SIDECAR = dispatch_pb2.XCOM_MODE_AUTO, dispatch_pb2.XCOM_MODE_SIDECAR
MODES = pytest.mark.parametrize("mode", [AUTO, SIDECAR], ids=["auto", "sidecar"])


def writes(text: str) -> str:
    """Pod code writing `text` (a Python expression) to the XCom file."""
    return f"import json; open('/airflow/xcom/return.json', 'w').write({text})"


def payload_of_size(size: int) -> dict[str, str]:
    """A JSON object whose compact encoding is exactly `size` bytes."""
    overhead = len(json.dumps({"data": ""}))
    return {"data": "x" * (size - overhead)}


async def test_auto_mode_returns_a_payload_just_under_the_termination_message_limit(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    value = payload_of_size(4095)
    events = await run_to_end(stub, pod_request(writes(f"json.dumps({value!r})"), xcom=AUTO))
    final = result(events)
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert json.loads(final.xcom_json) == value


async def test_auto_mode_payload_over_4096_bytes_is_an_error_naming_sidecar_mode(
    stub: dispatch_pb2_grpc.DispatchServiceStub,
) -> None:
    value = payload_of_size(5000)
    final = result(await run_to_end(stub, pod_request(writes(f"json.dumps({value!r})"), xcom=AUTO)))
    assert (final.phase, final.reason, final.exit_code) == (dispatch_pb2.POD_PHASE_FAILED, "XComError", 0)
    assert "sidecar" in final.message and "4096" in final.message
    assert not final.HasField("xcom_json")


async def test_sidecar_mode_returns_a_50_kib_payload_intact_and_stops_the_sidecar(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    value = {"rows": [{"i": i, "name": f"row-{i}", "ok": i % 3 == 0} for i in range(1200)]}
    assert len(json.dumps(value)) > 50 * 1024
    request = pod_request(
        writes(f"json.dumps({value!r})"),
        xcom=SIDECAR,
        regions=("eu-central-1",),
        lifecycle=dispatch_pb2.LifecycleOptions(on_finish=dispatch_pb2.ON_FINISH_ACTION_KEEP_POD),
    )
    final = result(await run_to_end(stub, request))
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and final.exit_code == 0
    assert json.loads(final.xcom_json) == value
    name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.name

    def states() -> dict[str, dict[str, object]]:
        pod = sim_pod(world, "local-eu-cpu", name)
        assert pod is not None
        return {cs["name"]: cs["state"] for cs in pod["status"]["containerStatuses"]}

    stopped = await eventually(lambda: (s := states()) and all("terminated" in v for v in s.values()) and s)
    assert set(stopped) == {"base", "airflow-xcom-sidecar"}
    assert stopped["airflow-xcom-sidecar"]["terminated"]["exitCode"] == 0


@MODES
async def test_no_xcom_file_means_no_result(stub: dispatch_pb2_grpc.DispatchServiceStub, mode: int) -> None:
    final = result(await run_to_end(stub, pod_request("print('nothing to return')", xcom=mode)))
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    assert not final.HasField("xcom_json")


@MODES
async def test_invalid_json_is_a_clear_error(stub: dispatch_pb2_grpc.DispatchServiceStub, mode: int) -> None:
    final = result(await run_to_end(stub, pod_request(writes("'{\"v\": 42'"), xcom=mode)))
    assert (final.phase, final.reason) == (dispatch_pb2.POD_PHASE_FAILED, "XComError")
    assert "not valid JSON" in final.message and "/airflow/xcom/return.json" in final.message
    assert not final.HasField("xcom_json")


async def test_sidecar_mode_with_a_failing_main_container_reports_its_exit_and_stops_the_sidecar(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld
) -> None:
    request = pod_request(
        writes("'{\"partial\": true}'") + "; import sys; sys.exit(3)",
        xcom=SIDECAR,
        regions=("eu-central-1",),
        lifecycle=dispatch_pb2.LifecycleOptions(on_finish=dispatch_pb2.ON_FINISH_ACTION_KEEP_POD),
    )
    final = result(await run_to_end(stub, request))
    assert (final.phase, final.exit_code, final.reason) == (dispatch_pb2.POD_PHASE_FAILED, 3, "Error")
    assert not final.HasField("xcom_json"), "a failed main container has no XCom result"
    name = (await stub.GetPod(dispatch_pb2.GetPodRequest(request_id=request.request_id))).pod.name

    def phase() -> str:
        return str(((sim_pod(world, "local-eu-cpu", name) or {}).get("status") or {}).get("phase"))

    assert await eventually(lambda: phase() == "Failed"), "the sidecar was stopped, so the pod ended"
