"""Dispatch protobuf messages <-> domain types. Validation of shape happens here; meaning is checked below."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from gateway import domain, errors
from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2
from gateway.placement import selectors
from gateway.placement.labels import label_value_error
from gateway.pods import pod_rules, pod_schema
from gateway.pods.builder import safe_label_value
from gateway.policy.limits import DEFAULT_LIMITS, InputLimits

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,253}$")
MAX_CANCEL_REASON = 1000
MAX_POD_JSON_BYTES = DEFAULT_LIMITS.manifest_bytes  # the default; the servicer passes the configured limits
MAX_PLACEMENT_TIMEOUT_SECONDS = 24 * 3600
# Pod manifests nest about ten levels deep (affinity terms are the deepest); anything far deeper is an
# attack on the parser or on whatever walks the manifest recursively after it.
MAX_POD_JSON_DEPTH = 64
MAX_CURSOR_DIGITS = 19  # a signed 64-bit sequence number

_XCOM = {
    dispatch_pb2.XCOM_MODE_DISABLED: domain.XcomMode.DISABLED,
    dispatch_pb2.XCOM_MODE_AUTO: domain.XcomMode.AUTO,
    dispatch_pb2.XCOM_MODE_SIDECAR: domain.XcomMode.SIDECAR,
}
_LOGS = {
    dispatch_pb2.LOG_SELECTION_UNSPECIFIED: domain.LogSelection.MAIN,
    dispatch_pb2.LOG_SELECTION_MAIN: domain.LogSelection.MAIN,
    dispatch_pb2.LOG_SELECTION_ALL: domain.LogSelection.ALL,
    dispatch_pb2.LOG_SELECTION_NAMED: domain.LogSelection.NAMED,
    dispatch_pb2.LOG_SELECTION_NONE: domain.LogSelection.NONE,
}
_ON_FINISH = {
    dispatch_pb2.ON_FINISH_ACTION_UNSPECIFIED: domain.OnFinishAction.DELETE_POD,
    dispatch_pb2.ON_FINISH_ACTION_DELETE_POD: domain.OnFinishAction.DELETE_POD,
    dispatch_pb2.ON_FINISH_ACTION_KEEP_POD: domain.OnFinishAction.KEEP_POD,
    dispatch_pb2.ON_FINISH_ACTION_DELETE_SUCCEEDED_POD: domain.OnFinishAction.DELETE_SUCCEEDED_POD,
}
_DISCONNECT = {
    dispatch_pb2.DISCONNECT_POLICY_UNSPECIFIED: domain.DisconnectPolicy.KEEP_RUNNING,
    dispatch_pb2.DISCONNECT_POLICY_KEEP_RUNNING: domain.DisconnectPolicy.KEEP_RUNNING,
    dispatch_pb2.DISCONNECT_POLICY_CANCEL: domain.DisconnectPolicy.CANCEL,
}
_PHASES = {
    domain.PodPhase.QUEUED: dispatch_pb2.POD_PHASE_QUEUED,
    domain.PodPhase.PENDING: dispatch_pb2.POD_PHASE_PENDING,
    domain.PodPhase.RUNNING: dispatch_pb2.POD_PHASE_RUNNING,
    domain.PodPhase.SUCCEEDED: dispatch_pb2.POD_PHASE_SUCCEEDED,
    domain.PodPhase.FAILED: dispatch_pb2.POD_PHASE_FAILED,
    domain.PodPhase.CANCELLED: dispatch_pb2.POD_PHASE_CANCELLED,
}
PHASES_FROM_PROTO: dict[int, domain.PodPhase] = {int(v): k for k, v in _PHASES.items()}
_VERDICTS = {
    domain.Verdict.ELIGIBLE: dispatch_pb2.VERDICT_ELIGIBLE,
    domain.Verdict.NO_CAPACITY: dispatch_pb2.VERDICT_NO_CAPACITY,
    domain.Verdict.REJECTED: dispatch_pb2.VERDICT_REJECTED,
}


class _Violations:
    """Collects every field problem so the caller sees them all at once."""

    def __init__(self) -> None:
        self.items: list[errors.FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(errors.FieldViolation(field=field, description=description))

    def raise_if_any(self, what: str) -> None:
        if self.items:
            summary = "; ".join(f"{v.field}: {v.description}" for v in self.items[:5])
            raise errors.InvalidArgument(f"invalid {what}: {summary}", self.items)


def phases_from_proto(values: list[int], field: str = "phases") -> list[domain.PodPhase]:
    """A phase filter; an unknown or UNSPECIFIED phase is refused (dropping it would widen the filter)."""
    v = _Violations()
    known = ", ".join(dispatch_pb2.PodPhase.Name(p) for p in PHASES_FROM_PROTO)
    for i, value in enumerate(values):
        if value not in PHASES_FROM_PROTO:
            v.add(f"{field}[{i}]", f"unknown or unspecified pod phase {value}; one of {known}")
    v.raise_if_any("phase filter")
    return [PHASES_FROM_PROTO[value] for value in values]


def seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def duration(value: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(value * 1e9))
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """What `Timestamp.FromDatetime(value.astimezone(UTC))` gives, in integer arithmetic: protobuf's own
    goes through a time tuple and `calendar.timegm`, several times the cost, and every message has one."""
    if value is None:
        return None
    since = value.astimezone(UTC) - _EPOCH
    return timestamp_pb2.Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def check_request_id(request_id: str, field: str = "request_id") -> str:
    if not REQUEST_ID_RE.match(request_id):
        raise errors.InvalidArgument(
            f"{field} must be 1..253 characters of letters, digits and ._:/@+=-",
            [errors.FieldViolation(field=field, description="1..253 characters of [A-Za-z0-9._:/@+=-]")],
        )
    return request_id


def check_cancel_reason(reason: str, field: str = "reason") -> str:
    """Stored with the request and sent to its owner replica (a NOTIFY payload stays under 8,000 bytes)."""
    if len(reason) > MAX_CANCEL_REASON:
        raise errors.InvalidArgument(
            f"{field} is {len(reason)} characters, more than the limit of {MAX_CANCEL_REASON}",
            [errors.FieldViolation(field=field, description=f"at most {MAX_CANCEL_REASON} characters")],
        )
    return reason


def _pod_manifest(raw: str, v: _Violations, limit: int = MAX_POD_JSON_BYTES) -> dict[str, Any]:
    """The manifest as strict JSON, checked against the Pod schema and the API server's rules."""
    if not raw:
        v.add(domain.MANIFEST_FIELD, "required: a Kubernetes Pod manifest as JSON")
        return {}
    if len(raw) > limit or len(raw.encode()) > limit:  # checked before any parsing, as sent (whitespace counts)
        v.add(domain.MANIFEST_FIELD, f"manifest is larger than {limit} bytes")
        return {}
    too_deep = f"nested more than {MAX_POD_JSON_DEPTH} levels deep; a Pod manifest needs far fewer"
    try:
        manifest = pod_schema.load_strict(raw)
    except json.JSONDecodeError as e:
        v.add(domain.MANIFEST_FIELD, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
        return {}
    except pod_schema.NotStrictJSON as e:
        v.add(domain.MANIFEST_FIELD, f"not strict JSON: {e}")
        return {}
    except RecursionError:
        v.add(domain.MANIFEST_FIELD, too_deep)
        return {}
    if _may_nest_too_deep(raw) and _depth(manifest) > MAX_POD_JSON_DEPTH:
        v.add(domain.MANIFEST_FIELD, too_deep)
        return {}
    if not isinstance(manifest, dict):
        v.add(domain.MANIFEST_FIELD, "must be a JSON object (a Pod manifest)")
        return {}
    v.items.extend(pod_violations_of_schema(manifest))
    return manifest


def pod_violations_of_schema(manifest: dict[str, Any]) -> list[errors.FieldViolation]:
    """Types, unknown fields, Go's number ranges and the API server's rules, every one at once."""
    return pod_schema.schema_violations(manifest, domain.MANIFEST_FIELD, pod_rules.RULES)


def _may_nest_too_deep(raw: str) -> bool:
    """Whether `_depth` must look: every level below the top opens with a { or [ of the text (one in a string
    counts too: a bound), so a text with fewer than the limit cannot nest past it (most manifests: 2 us
    instead of walking every value again)."""
    return raw.count("{") + raw.count("[") >= MAX_POD_JSON_DEPTH


def _depth(value: Any) -> int:
    """How deeply a parsed JSON value nests, without recursion (the value may be deeper than the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        deepest = max(deepest, level)
        if deepest > MAX_POD_JSON_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def _tolerations(items: list[common_pb2.Toleration], v: _Violations) -> tuple[domain.Toleration, ...]:
    out = []
    for i, t in enumerate(items):
        operator = t.operator or "Equal"
        if operator not in ("Equal", "Exists"):
            v.add(f"pod.placement.cluster_tolerations[{i}].operator", "must be Equal or Exists")
        if operator == "Exists" and t.value:
            v.add(f"pod.placement.cluster_tolerations[{i}].value", "must be empty with operator Exists")
        if t.effect and t.effect not in tuple(domain.TaintEffect):
            v.add(f"pod.placement.cluster_tolerations[{i}].effect", "must be NoSelect, PreferNoSelect or empty")
        out.append(domain.Toleration(key=t.key, operator=operator, value=t.value, effect=t.effect))
    return tuple(out)


def selector_from_proto(s: common_pb2.LabelSelector, field: str) -> domain.Selector:
    if not s.ListFields():  # no labels, expressions or expression: most requests' (from_parts gives the same)
        return ANY_CLUSTER
    return selectors.from_parts(
        match_labels=dict(s.match_labels),
        match_expressions=[(r.key, r.operator, list(r.values)) for r in s.match_expressions],
        expression=s.expression,
        field=field,
    )


ANY_CLUSTER = domain.Selector()
NO_CONSTRAINT = domain.PlacementSpec()  # what `_placement` makes of an empty message, made once


def _placement(p: common_pb2.Placement, v: _Violations) -> domain.PlacementSpec:
    if not p.ListFields():  # no field set: a request that leaves placement to the gateway (~10 us a call)
        return NO_CONSTRAINT
    prefix = "pod.placement"
    try:
        selector = selector_from_proto(p.cluster_selector, f"{prefix}.cluster_selector")
    except errors.InvalidArgument as e:
        v.items.extend(e.violations)
        selector = domain.Selector()
    preferences = []
    for i, pref in enumerate(p.preferences):
        if not 1 <= pref.weight <= 100:
            v.add(f"{prefix}.preferences[{i}].weight", "must be between 1 and 100")
        try:
            preferences.append(
                domain.Preference(
                    weight=pref.weight,
                    selector=selector_from_proto(pref.selector, f"{prefix}.preferences[{i}].selector"),
                )
            )
        except errors.InvalidArgument as e:
            v.items.extend(e.violations)
    for name, values in (("regions", p.regions), ("clusters", p.clusters)):
        for i, value in enumerate(values):
            if not value.strip():
                v.add(f"{prefix}.{name}[{i}]", "must not be empty")
    timeout = seconds(p.timeout)
    if not 0 <= timeout <= MAX_PLACEMENT_TIMEOUT_SECONDS:
        v.add(f"{prefix}.timeout", f"must be between 0 and {MAX_PLACEMENT_TIMEOUT_SECONDS} seconds")
    return domain.PlacementSpec(
        selector=selector,
        regions=frozenset(p.regions),
        clusters=frozenset(p.clusters),
        tolerations=_tolerations(list(p.cluster_tolerations), v),
        preferences=tuple(preferences),
        timeout_seconds=timeout,
    )


def _airflow(a: dispatch_pb2.AirflowContext, v: _Violations) -> domain.AirflowContext | None:
    """The context becomes pod labels, so each part must make a label value Kubernetes accepts."""
    if not (a.dag_id or a.task_id or a.run_id):
        return None
    for name in ("dag_id", "task_id", "run_id"):
        value = getattr(a, name)
        if value and label_value_error(safe_label_value(value)):
            v.add(f"pod.airflow.{name}", "needs a letter or digit: it becomes a pod label value")
    if a.try_number < 0:
        v.add("pod.airflow.try_number", "must not be negative")
    return domain.AirflowContext(
        dag_id=a.dag_id, task_id=a.task_id, run_id=a.run_id, map_index=a.map_index, try_number=a.try_number
    )


def pod_request_from_proto(
    p: dispatch_pb2.PodRequest, *, tenant: str = "", limits: InputLimits = DEFAULT_LIMITS
) -> domain.PodRequest:
    """Checks shape (JSON, enums, ranges, selector syntax) and returns the domain request."""
    v = _Violations()
    if not REQUEST_ID_RE.match(p.request_id):
        v.add("pod.request_id", "required: 1..253 characters of [A-Za-z0-9._:/@+=-]")
    manifest = _pod_manifest(p.pod_json, v, limits.manifest_bytes)
    placement = _placement(p.placement, v)
    xcom = domain.XcomMode.DISABLED
    if p.HasField("xcom"):  # documented: UNSPECIFIED means DISABLED when absent, AUTO when present
        mode = p.xcom.mode or dispatch_pb2.XCOM_MODE_AUTO
        if mode not in _XCOM:
            v.add("pod.xcom.mode", f"unknown XCom mode {mode}; XCOM_MODE_DISABLED, _AUTO or _SIDECAR")
        xcom = _XCOM.get(mode, xcom)
    if p.logs.selection not in _LOGS:
        v.add("pod.logs.selection", "unknown log selection")
    if p.logs.selection == dispatch_pb2.LOG_SELECTION_NAMED and not p.logs.containers:
        v.add("pod.logs.containers", "required with LOG_SELECTION_NAMED")
    if p.lifecycle.on_finish not in _ON_FINISH:
        v.add("pod.lifecycle.on_finish", "unknown on-finish action")
    if p.lifecycle.on_disconnect not in _DISCONNECT:
        v.add("pod.lifecycle.on_disconnect", "unknown disconnect policy")
    startup = seconds(p.lifecycle.startup_timeout) if p.lifecycle.HasField("startup_timeout") else 120.0
    grace = seconds(p.lifecycle.reattach_grace) if p.lifecycle.HasField("reattach_grace") else 300.0
    if startup <= 0 or grace < 0:
        v.add("pod.lifecycle", "startup_timeout must be positive and reattach_grace not negative")
    airflow = _airflow(p.airflow, v)
    v.raise_if_any("pod request")
    return domain.PodRequest(
        request_id=p.request_id,
        pod=manifest,
        placement=placement,
        xcom_mode=xcom,
        xcom_sidecar_image=p.xcom.sidecar_image,
        log_selection=_LOGS[p.logs.selection],
        log_containers=tuple(p.logs.containers),
        on_finish=_ON_FINISH[p.lifecycle.on_finish],
        startup_timeout_seconds=startup,
        on_disconnect=_DISCONNECT[p.lifecycle.on_disconnect],
        reattach_grace_seconds=grace,
        airflow=airflow,
        tenant=tenant,
        keep_name=p.keep_name,
    )


def decision_to_proto(d: domain.PlacementDecision) -> dispatch_pb2.PlacementDecision:
    return dispatch_pb2.PlacementDecision(
        cluster=d.cluster,
        region=d.region,
        reason=d.reason,
        verdicts=[
            dispatch_pb2.ClusterVerdict(
                cluster=cv.cluster,
                region=cv.region,
                verdict=_VERDICTS[cv.verdict],
                reason=cv.reason,
                score=cv.score,
                chosen=cv.chosen,
            )
            for cv in d.verdicts
        ],
    )


def kube_event_to_proto(e: domain.KubernetesEvent) -> dispatch_pb2.KubernetesEvent:
    return dispatch_pb2.KubernetesEvent(
        time=timestamp(e.time), type=e.type, reason=e.reason, message=e.message, count=e.count
    )


def result_to_proto(r: domain.PodResult) -> dispatch_pb2.PodResult:
    out = dispatch_pb2.PodResult(
        phase=_PHASES[r.phase],
        exit_code=r.exit_code,
        reason=r.reason,
        message=r.message,
        containers=[
            dispatch_pb2.ContainerResult(name=c.name, exit_code=c.exit_code, reason=c.reason, message=c.message)
            for c in r.containers
        ],
        warning_events=[kube_event_to_proto(e) for e in r.warning_events],
    )
    if r.xcom_json is not None:
        out.xcom_json = r.xcom_json
    return out


def phase_to_proto(phase: domain.PodPhase) -> int:
    return _PHASES[phase]


def record_to_proto(r: domain.PodRecord) -> dispatch_pb2.Pod:
    a = r.request.airflow
    out = dispatch_pb2.Pod(
        request_id=r.request.request_id,
        phase=_PHASES[r.phase],
        cluster=r.cluster,
        region=r.region,
        namespace=r.namespace,
        name=r.name,
        create_time=timestamp(r.created_at),
        finish_time=timestamp(r.finished_at),
        tenant=r.request.tenant,
        labels={str(k): str(v) for k, v in ((r.request.pod.get("metadata") or {}).get("labels") or {}).items()},
        placement=None if r.decision is None else decision_to_proto(r.decision),
        result=None if r.result is None else result_to_proto(r.result),
        airflow=None if a is None else dispatch_pb2.AirflowContext(
            dag_id=a.dag_id, task_id=a.task_id, run_id=a.run_id, map_index=a.map_index, try_number=a.try_number
        ),
    )  # fmt: skip
    return out


def cursor_of(seq: int) -> str:
    return f"c{seq}"


def parse_cursor(cursor: str) -> int:
    """The sequence number after which to resume; an empty cursor replays from the start."""
    if not cursor:
        return 0
    digits = cursor[1:]
    if cursor.startswith("c") and digits.isascii() and digits.isdigit() and len(digits) <= MAX_CURSOR_DIGITS:
        return int(digits)
    raise errors.InvalidArgument(
        "cursor is not one this gateway issued; pass the cursor of the last event you received, or none",
        [errors.FieldViolation(field="cursor", description="not a cursor issued by this gateway")],
    )


def stream_event_to_proto(e: domain.StreamEvent) -> dispatch_pb2.PodEvent:
    """One constructor per event, log lines (most of a stream) first: no empty message filled by CopyFrom."""
    item, cursor, time = e.item, cursor_of(e.seq), timestamp(e.time)
    if isinstance(item, domain.LogLine):
        line = dispatch_pb2.LogLine(container=item.container, time=timestamp(item.time), text=item.text)
        return dispatch_pb2.PodEvent(cursor=cursor, time=time, log=line)
    if isinstance(item, domain.PhaseChange):
        change = dispatch_pb2.PhaseChange(phase=_PHASES[item.phase], reason=item.reason, message=item.message)
        return dispatch_pb2.PodEvent(cursor=cursor, time=time, phase=change)
    if isinstance(item, domain.KubernetesEvent):
        return dispatch_pb2.PodEvent(cursor=cursor, time=time, kubernetes_event=kube_event_to_proto(item))
    if isinstance(item, domain.PlacementDecision):
        return dispatch_pb2.PodEvent(cursor=cursor, time=time, placed=decision_to_proto(item))
    return dispatch_pb2.PodEvent(cursor=cursor, time=time, result=result_to_proto(item))
