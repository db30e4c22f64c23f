"""Client conversion tables: PodEvent protos -> client events, PodSpecRequest -> PodRequest proto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from gateway._proto.podgate.v1 import dispatch_pb2
from gateway.client import convert
from gateway.client import types as t
from gateway.client.request import PodSpecRequest

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def ts(d: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(d)
    return out


DECISION = dispatch_pb2.PlacementDecision(
    cluster="eu",
    region="eu-west-1",
    reason="most free GPUs",
    verdicts=[
        dispatch_pb2.ClusterVerdict(
            cluster="eu", region="eu-west-1", verdict=dispatch_pb2.VERDICT_ELIGIBLE, score=0.5, chosen=True
        ),
        dispatch_pb2.ClusterVerdict(
            cluster="us", region="us-east-1", verdict=dispatch_pb2.VERDICT_REJECTED, reason="region not allowed"
        ),
    ],
)


@pytest.mark.parametrize(
    ("proto", "expected"),
    [
        (
            dispatch_pb2.PodEvent(cursor="c1", time=ts(T0), placed=DECISION),
            t.Placed(
                cursor="c1",
                time=T0,
                decision=t.PlacementDecision(
                    cluster="eu",
                    region="eu-west-1",
                    reason="most free GPUs",
                    verdicts=(
                        t.ClusterVerdict(
                            cluster="eu",
                            region="eu-west-1",
                            verdict=t.Verdict.ELIGIBLE,
                            reason="",
                            score=0.5,
                            chosen=True,
                        ),
                        t.ClusterVerdict(
                            cluster="us", region="us-east-1", verdict=t.Verdict.REJECTED, reason="region not allowed"
                        ),
                    ),
                ),
            ),
        ),
        (
            dispatch_pb2.PodEvent(
                cursor="c2",
                phase=dispatch_pb2.PhaseChange(phase=dispatch_pb2.POD_PHASE_RUNNING, reason="Started", message="m"),
            ),
            t.Phase(cursor="c2", time=None, phase=t.PodPhase.RUNNING, reason="Started", message="m"),
        ),
        (
            dispatch_pb2.PodEvent(
                cursor="c3",
                time=ts(T0),
                kubernetes_event=dispatch_pb2.KubernetesEvent(
                    time=ts(T0), type="Warning", reason="BackOff", message="pulling", count=3
                ),
            ),
            t.Notice(
                cursor="c3",
                time=T0,
                event=t.KubernetesEvent(time=T0, type="Warning", reason="BackOff", message="pulling", count=3),
            ),
        ),
        (
            dispatch_pb2.PodEvent(
                cursor="c4", log=dispatch_pb2.LogLine(container="base", time=ts(T0 + timedelta(seconds=1)), text="hi")
            ),
            t.Log(cursor="c4", time=None, container="base", text="hi", log_time=T0 + timedelta(seconds=1)),
        ),
        (
            dispatch_pb2.PodEvent(
                cursor="c5",
                result=dispatch_pb2.PodResult(
                    phase=dispatch_pb2.POD_PHASE_FAILED,
                    exit_code=3,
                    reason="Error",
                    message="boom",
                    containers=[dispatch_pb2.ContainerResult(name="base", exit_code=3, reason="Error")],
                    xcom_json='{"a": 1}',
                    warning_events=[dispatch_pb2.KubernetesEvent(type="Warning", reason="BackOff", count=1)],
                ),
            ),
            t.Result(
                cursor="c5",
                time=None,
                result=t.PodResult(
                    phase=t.PodPhase.FAILED,
                    exit_code=3,
                    reason="Error",
                    message="boom",
                    containers=(t.ContainerResult(name="base", exit_code=3, reason="Error"),),
                    xcom_json='{"a": 1}',
                    warning_events=(
                        t.KubernetesEvent(time=None, type="Warning", reason="BackOff", message="", count=1),
                    ),
                ),
            ),
        ),
        (dispatch_pb2.PodEvent(cursor="c6"), None),
    ],
    ids=["placed", "phase", "kube-event", "log", "result", "unknown-kind"],
)
def test_pod_event_conversion(proto: dispatch_pb2.PodEvent, expected: t.PodEvent | None) -> None:
    assert convert.event_of(proto) == expected


@pytest.mark.parametrize(
    ("xcom_json", "has_field", "value"),
    [('{"v": 42}', True, {"v": 42}), ("", True, None), ("[1, 2]", True, [1, 2]), ("", False, None)],
)
def test_result_xcom_presence(xcom_json: str, has_field: bool, value: Any) -> None:
    proto = dispatch_pb2.PodResult(phase=dispatch_pb2.POD_PHASE_SUCCEEDED, exit_code=0)
    if has_field:
        proto.xcom_json = xcom_json
    result = convert.result_of(proto)
    assert result.xcom_json == (xcom_json if has_field else None)
    assert result.xcom() == value
    assert result.succeeded


def test_pod_record_conversion() -> None:
    proto = dispatch_pb2.Pod(
        request_id="r1",
        phase=dispatch_pb2.POD_PHASE_SUCCEEDED,
        cluster="eu",
        namespace="default",
        name="hello-abc",
        create_time=ts(T0),
        placement=DECISION,
        airflow=dispatch_pb2.AirflowContext(dag_id="d", task_id="t", run_id="r", map_index=2, try_number=1),
    )
    pod = convert.pod_of(proto)
    assert (pod.request_id, pod.phase, pod.cluster, pod.name) == ("r1", t.PodPhase.SUCCEEDED, "eu", "hello-abc")
    assert pod.create_time == T0 and pod.finish_time is None and pod.result is None
    assert pod.placement is not None and pod.placement.cluster == "eu"
    assert pod.airflow == t.AirflowContext(dag_id="d", task_id="t", run_id="r", map_index=2, try_number=1)
    assert convert.pod_of(dispatch_pb2.Pod(request_id="x")).airflow is None


POD = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "base", "image": "python:3.12"}]}}


def _req(**kw: Any) -> dispatch_pb2.PodRequest:
    return convert.pod_request_to_proto(PodSpecRequest.build(request_id="r-1", pod=POD, **kw))


def test_defaults_become_a_minimal_request() -> None:
    p = _req()
    assert p.request_id == "r-1"
    assert json.loads(p.pod_json) == POD
    assert not p.HasField("xcom")  # absent options mean XCom disabled
    assert not p.placement.HasField("timeout")
    assert p.logs.selection == dispatch_pb2.LOG_SELECTION_MAIN
    assert p.lifecycle.on_finish == dispatch_pb2.ON_FINISH_ACTION_DELETE_POD
    assert not p.lifecycle.HasField("startup_timeout")
    assert p.lifecycle.on_disconnect == dispatch_pb2.DISCONNECT_POLICY_UNSPECIFIED
    assert not p.HasField("airflow")


@pytest.mark.parametrize(
    ("selector", "labels", "expressions", "expression"),
    [
        ("gpu in (a100,h100),tier=prod", {}, [], "gpu in (a100,h100),tier=prod"),
        ({"tier": "prod", "gpu": "a100"}, {"tier": "prod", "gpu": "a100"}, [], ""),
        (
            {"matchLabels": {"tier": "prod"}, "matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a"]}]},
            {"tier": "prod"},
            [("gpu", "In", ["a"])],
            "",
        ),
        ({"match_expressions": [("legacy", "DoesNotExist")]}, {}, [("legacy", "DoesNotExist", [])], ""),
        (None, {}, [], ""),
    ],
    ids=["string", "label-map", "k8s-selector", "snake-case-tuples", "none"],
)
def test_cluster_selector_spellings(
    selector: Any, labels: dict[str, str], expressions: list[tuple[str, str, list[str]]], expression: str
) -> None:
    s = _req(cluster_selector=selector).placement.cluster_selector
    assert dict(s.match_labels) == labels
    assert [(r.key, r.operator, list(r.values)) for r in s.match_expressions] == expressions
    assert s.expression == expression


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ("gpu=scarce:NoSelect", ("gpu", "Equal", "scarce", "NoSelect")),
        ("maintenance:PreferNoSelect", ("maintenance", "Exists", "", "PreferNoSelect")),
        ("podgate.io/unreachable", ("podgate.io/unreachable", "Exists", "", "")),
        ("k=v", ("k", "Equal", "v", "")),
        ({"key": "k", "operator": "Exists"}, ("k", "Exists", "", "")),
    ],
)
def test_cluster_tolerations(toleration: Any, expected: tuple[str, str, str, str]) -> None:
    (tol,) = _req(cluster_tolerations=[toleration]).placement.cluster_tolerations
    assert (tol.key, tol.operator, tol.value, tol.effect) == expected


def test_placement_lists_preferences_and_timeout() -> None:
    p = _req(
        regions=["eu-west-1", "eu-central-1"],
        clusters=["a"],
        preferences=[(30, "tier=prod"), {"weight": 5, "selector": {"gpu": "h100"}}],
        placement_timeout=timedelta(minutes=2),
    ).placement
    assert list(p.regions) == ["eu-west-1", "eu-central-1"] and list(p.clusters) == ["a"]
    assert [(x.weight, x.selector.expression, dict(x.selector.match_labels)) for x in p.preferences] == [
        (30, "tier=prod", {}),
        (5, "", {"gpu": "h100"}),
    ]
    assert p.timeout.ToTimedelta() == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("kw", "mode", "sidecar"),
    [
        ({"xcom": True}, dispatch_pb2.XCOM_MODE_AUTO, ""),
        ({"xcom": "auto"}, dispatch_pb2.XCOM_MODE_AUTO, ""),
        ({"xcom": "sidecar", "xcom_sidecar_image": "alpine:3"}, dispatch_pb2.XCOM_MODE_SIDECAR, "alpine:3"),
    ],
)
def test_xcom_modes(kw: dict[str, Any], mode: int, sidecar: str) -> None:
    p = _req(**kw)
    assert p.HasField("xcom") and p.xcom.mode == mode and p.xcom.sidecar_image == sidecar


@pytest.mark.parametrize(
    ("logs", "selection", "containers"),
    [
        ("all", dispatch_pb2.LOG_SELECTION_ALL, []),
        (False, dispatch_pb2.LOG_SELECTION_NONE, []),
        (True, dispatch_pb2.LOG_SELECTION_MAIN, []),
        (["base", "side"], dispatch_pb2.LOG_SELECTION_NAMED, ["base", "side"]),
    ],
)
def test_log_selection(logs: Any, selection: int, containers: list[str]) -> None:
    p = _req(logs=logs).logs
    assert (p.selection, list(p.containers)) == (selection, containers)


def test_lifecycle_and_airflow_context() -> None:
    p = _req(
        on_finish="keep_pod",
        startup_timeout=30,
        on_disconnect="cancel",
        reattach_grace=timedelta(seconds=90),
        airflow=t.AirflowContext(dag_id="d", task_id="t", run_id="manual__x", map_index=-1, try_number=2),
    )
    assert p.lifecycle.on_finish == dispatch_pb2.ON_FINISH_ACTION_KEEP_POD
    assert p.lifecycle.startup_timeout.seconds == 30
    assert p.lifecycle.on_disconnect == dispatch_pb2.DISCONNECT_POLICY_CANCEL
    assert p.lifecycle.reattach_grace.seconds == 90
    assert (p.airflow.dag_id, p.airflow.run_id, p.airflow.map_index, p.airflow.try_number) == ("d", "manual__x", -1, 2)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"request_id": "has space"}, ValueError, "request_id"),
        ({"request_id": ""}, ValueError, "request_id"),
        ({"pod": "not a dict"}, TypeError, "Pod manifest"),
        ({"regions": "eu-west-1"}, TypeError, "regions"),
        ({"clusters": [""]}, ValueError, "empty"),
        ({"xcom": "file"}, ValueError, "'disabled', 'auto', 'sidecar'"),
        ({"on_finish": "delete"}, ValueError, "on_finish"),
        ({"placement_timeout": -1}, ValueError, "negative"),
        ({"cluster_selector": 3}, TypeError, "selector"),
        ({"cluster_tolerations": ["=x"]}, ValueError, "toleration"),
        ({"logs": []}, ValueError, "at least one"),
    ],
)
def test_bad_requests_fail_before_the_round_trip(kw: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"request_id": "ok", "pod": POD, **kw}
    with pytest.raises(error, match=match):
        PodSpecRequest.build(**args)
