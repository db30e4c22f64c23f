"""Dispatch protobuf messages <-> the client's dataclasses: the one place the client reads or builds them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf import duration_pb2, timestamp_pb2

from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2
from gateway.client import types as t
from gateway.client.request import (
    DisconnectPolicy,
    LogSelection,
    OnFinishAction,
    PodSpecRequest,
    SelectorSpec,
    XcomMode,
)

PHASES_TO_PROTO = {
    t.PodPhase.UNSPECIFIED: dispatch_pb2.POD_PHASE_UNSPECIFIED,
    t.PodPhase.QUEUED: dispatch_pb2.POD_PHASE_QUEUED,
    t.PodPhase.PENDING: dispatch_pb2.POD_PHASE_PENDING,
    t.PodPhase.RUNNING: dispatch_pb2.POD_PHASE_RUNNING,
    t.PodPhase.SUCCEEDED: dispatch_pb2.POD_PHASE_SUCCEEDED,
    t.PodPhase.FAILED: dispatch_pb2.POD_PHASE_FAILED,
    t.PodPhase.CANCELLED: dispatch_pb2.POD_PHASE_CANCELLED,
}
_PHASES: dict[int, t.PodPhase] = {int(v): k for k, v in PHASES_TO_PROTO.items()}
_VERDICTS: dict[int, t.Verdict] = {
    dispatch_pb2.VERDICT_UNSPECIFIED: t.Verdict.UNSPECIFIED,
    dispatch_pb2.VERDICT_ELIGIBLE: t.Verdict.ELIGIBLE,
    dispatch_pb2.VERDICT_NO_CAPACITY: t.Verdict.NO_CAPACITY,
    dispatch_pb2.VERDICT_REJECTED: t.Verdict.REJECTED,
}
_XCOM = {
    XcomMode.DISABLED: dispatch_pb2.XCOM_MODE_DISABLED,
    XcomMode.AUTO: dispatch_pb2.XCOM_MODE_AUTO,
    XcomMode.SIDECAR: dispatch_pb2.XCOM_MODE_SIDECAR,
}
_LOGS = {
    LogSelection.MAIN: dispatch_pb2.LOG_SELECTION_MAIN,
    LogSelection.ALL: dispatch_pb2.LOG_SELECTION_ALL,
    LogSelection.NONE: dispatch_pb2.LOG_SELECTION_NONE,
}
_ON_FINISH = {
    OnFinishAction.DELETE_POD: dispatch_pb2.ON_FINISH_ACTION_DELETE_POD,
    OnFinishAction.KEEP_POD: dispatch_pb2.ON_FINISH_ACTION_KEEP_POD,
    OnFinishAction.DELETE_SUCCEEDED_POD: dispatch_pb2.ON_FINISH_ACTION_DELETE_SUCCEEDED_POD,
}
_ON_DISCONNECT = {
    DisconnectPolicy.KEEP_RUNNING: dispatch_pb2.DISCONNECT_POLICY_KEEP_RUNNING,
    DisconnectPolicy.CANCEL: dispatch_pb2.DISCONNECT_POLICY_CANCEL,
}


# --- scalars ------------------------------------------------------------------------------------


def duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def time_of(ts: timestamp_pb2.Timestamp) -> datetime | None:
    """None for an unset timestamp (all zero), else an aware UTC datetime."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


# --- requests -----------------------------------------------------------------------------------


def selector_to_proto(s: SelectorSpec) -> common_pb2.LabelSelector:
    return common_pb2.LabelSelector(
        match_labels=dict(s.match_labels),
        match_expressions=[
            common_pb2.LabelSelectorRequirement(key=k, operator=op, values=list(vs))
            for k, op, vs in s.match_expressions
        ],
        expression=s.expression,
    )


def placement_to_proto(r: PodSpecRequest) -> common_pb2.Placement:
    out = common_pb2.Placement(
        cluster_selector=selector_to_proto(r.cluster_selector),
        regions=list(r.regions),
        clusters=list(r.clusters),
        cluster_tolerations=[
            common_pb2.Toleration(key=x.key, operator=x.operator, value=x.value, effect=x.effect)
            for x in r.cluster_tolerations
        ],
        preferences=[
            common_pb2.Preference(weight=p.weight, selector=selector_to_proto(p.selector)) for p in r.preferences
        ],
    )
    if r.placement_timeout is not None:
        out.timeout.CopyFrom(duration(r.placement_timeout))
    return out


def _logs(selection: LogSelection | tuple[str, ...]) -> dispatch_pb2.LogOptions:
    if isinstance(selection, LogSelection):
        return dispatch_pb2.LogOptions(selection=_LOGS[selection])
    return dispatch_pb2.LogOptions(selection=dispatch_pb2.LOG_SELECTION_NAMED, containers=list(selection))


def _lifecycle(r: PodSpecRequest) -> dispatch_pb2.LifecycleOptions:
    out = dispatch_pb2.LifecycleOptions(on_finish=_ON_FINISH[r.on_finish])
    if r.startup_timeout is not None:
        out.startup_timeout.CopyFrom(duration(r.startup_timeout))
    if r.on_disconnect is not None:
        out.on_disconnect = _ON_DISCONNECT[r.on_disconnect]
    if r.reattach_grace is not None:
        out.reattach_grace.CopyFrom(duration(r.reattach_grace))
    return out


def airflow_to_proto(a: t.AirflowContext) -> dispatch_pb2.AirflowContext:
    return dispatch_pb2.AirflowContext(
        dag_id=a.dag_id, task_id=a.task_id, run_id=a.run_id, map_index=a.map_index, try_number=a.try_number
    )


def pod_request_to_proto(r: PodSpecRequest) -> dispatch_pb2.PodRequest:
    out = dispatch_pb2.PodRequest(
        request_id=r.request_id,
        pod_json=json.dumps(r.pod, separators=(",", ":"), sort_keys=True),
        placement=placement_to_proto(r),
        logs=_logs(r.logs),
        lifecycle=_lifecycle(r),
        keep_name=r.keep_name,
    )
    if r.xcom != XcomMode.DISABLED:
        out.xcom.CopyFrom(dispatch_pb2.XcomOptions(mode=_XCOM[r.xcom], sidecar_image=r.xcom_sidecar_image))
    if r.airflow is not None:
        out.airflow.CopyFrom(airflow_to_proto(r.airflow))
    return out


# --- responses ----------------------------------------------------------------------------------


def phase_of(value: int) -> t.PodPhase:
    return _PHASES.get(value, t.PodPhase.UNSPECIFIED)


def decision_of(d: dispatch_pb2.PlacementDecision) -> t.PlacementDecision:
    return t.PlacementDecision(
        cluster=d.cluster,
        region=d.region,
        reason=d.reason,
        verdicts=tuple(
            t.ClusterVerdict(
                cluster=v.cluster,
                region=v.region,
                verdict=_VERDICTS.get(v.verdict, t.Verdict.UNSPECIFIED),
                reason=v.reason,
                score=v.score,
                chosen=v.chosen,
            )
            for v in d.verdicts
        ),
    )


def kube_event_of(e: dispatch_pb2.KubernetesEvent) -> t.KubernetesEvent:
    return t.KubernetesEvent(time=time_of(e.time), type=e.type, reason=e.reason, message=e.message, count=e.count)


def result_of(r: dispatch_pb2.PodResult) -> t.PodResult:
    return t.PodResult(
        phase=phase_of(r.phase),
        exit_code=r.exit_code,
        reason=r.reason,
        message=r.message,
        containers=tuple(
            t.ContainerResult(name=c.name, exit_code=c.exit_code, reason=c.reason, message=c.message)
            for c in r.containers
        ),
        xcom_json=r.xcom_json if r.HasField("xcom_json") else None,
        warning_events=tuple(kube_event_of(e) for e in r.warning_events),
    )


def airflow_of(a: dispatch_pb2.AirflowContext) -> t.AirflowContext | None:
    if not (a.dag_id or a.task_id or a.run_id):
        return None
    return t.AirflowContext(
        dag_id=a.dag_id, task_id=a.task_id, run_id=a.run_id, map_index=a.map_index, try_number=a.try_number
    )


def pod_of(p: dispatch_pb2.Pod) -> t.PodInfo:
    return t.PodInfo(
        request_id=p.request_id,
        phase=phase_of(p.phase),
        cluster=p.cluster,
        region=p.region,
        namespace=p.namespace,
        name=p.name,
        create_time=time_of(p.create_time),
        finish_time=time_of(p.finish_time),
        placement=decision_of(p.placement) if p.HasField("placement") else None,
        result=result_of(p.result) if p.HasField("result") else None,
        airflow=airflow_of(p.airflow),
        tenant=p.tenant,
        labels=dict(p.labels),
    )


def event_of(e: dispatch_pb2.PodEvent) -> t.PodEvent | None:
    """None for an event kind this client does not know (a newer gateway): callers skip it."""
    when = time_of(e.time)
    kind = e.WhichOneof("event")
    if kind == "placed":
        return t.Placed(cursor=e.cursor, time=when, decision=decision_of(e.placed))
    if kind == "phase":
        return t.Phase(
            cursor=e.cursor, time=when, phase=phase_of(e.phase.phase), reason=e.phase.reason, message=e.phase.message
        )
    if kind == "kubernetes_event":
        return t.Notice(cursor=e.cursor, time=when, event=kube_event_of(e.kubernetes_event))
    if kind == "log":
        return t.Log(
            cursor=e.cursor, time=when, container=e.log.container, text=e.log.text, log_time=time_of(e.log.time)
        )
    if kind == "result":
        return t.Result(cursor=e.cursor, time=when, result=result_of(e.result))
    return None
