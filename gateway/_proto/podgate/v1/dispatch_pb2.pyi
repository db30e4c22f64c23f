import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gateway._proto.podgate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class XcomMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    XCOM_MODE_UNSPECIFIED: _ClassVar[XcomMode]
    XCOM_MODE_DISABLED: _ClassVar[XcomMode]
    XCOM_MODE_AUTO: _ClassVar[XcomMode]
    XCOM_MODE_SIDECAR: _ClassVar[XcomMode]

class LogSelection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_SELECTION_UNSPECIFIED: _ClassVar[LogSelection]
    LOG_SELECTION_MAIN: _ClassVar[LogSelection]
    LOG_SELECTION_ALL: _ClassVar[LogSelection]
    LOG_SELECTION_NAMED: _ClassVar[LogSelection]
    LOG_SELECTION_NONE: _ClassVar[LogSelection]

class OnFinishAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_FINISH_ACTION_UNSPECIFIED: _ClassVar[OnFinishAction]
    ON_FINISH_ACTION_DELETE_POD: _ClassVar[OnFinishAction]
    ON_FINISH_ACTION_KEEP_POD: _ClassVar[OnFinishAction]
    ON_FINISH_ACTION_DELETE_SUCCEEDED_POD: _ClassVar[OnFinishAction]

class DisconnectPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISCONNECT_POLICY_UNSPECIFIED: _ClassVar[DisconnectPolicy]
    DISCONNECT_POLICY_KEEP_RUNNING: _ClassVar[DisconnectPolicy]
    DISCONNECT_POLICY_CANCEL: _ClassVar[DisconnectPolicy]

class PodPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POD_PHASE_UNSPECIFIED: _ClassVar[PodPhase]
    POD_PHASE_QUEUED: _ClassVar[PodPhase]
    POD_PHASE_PENDING: _ClassVar[PodPhase]
    POD_PHASE_RUNNING: _ClassVar[PodPhase]
    POD_PHASE_SUCCEEDED: _ClassVar[PodPhase]
    POD_PHASE_FAILED: _ClassVar[PodPhase]
    POD_PHASE_CANCELLED: _ClassVar[PodPhase]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ELIGIBLE: _ClassVar[Verdict]
    VERDICT_NO_CAPACITY: _ClassVar[Verdict]
    VERDICT_REJECTED: _ClassVar[Verdict]
XCOM_MODE_UNSPECIFIED: XcomMode
XCOM_MODE_DISABLED: XcomMode
XCOM_MODE_AUTO: XcomMode
XCOM_MODE_SIDECAR: XcomMode
LOG_SELECTION_UNSPECIFIED: LogSelection
LOG_SELECTION_MAIN: LogSelection
LOG_SELECTION_ALL: LogSelection
LOG_SELECTION_NAMED: LogSelection
LOG_SELECTION_NONE: LogSelection
ON_FINISH_ACTION_UNSPECIFIED: OnFinishAction
ON_FINISH_ACTION_DELETE_POD: OnFinishAction
ON_FINISH_ACTION_KEEP_POD: OnFinishAction
ON_FINISH_ACTION_DELETE_SUCCEEDED_POD: OnFinishAction
DISCONNECT_POLICY_UNSPECIFIED: DisconnectPolicy
DISCONNECT_POLICY_KEEP_RUNNING: DisconnectPolicy
DISCONNECT_POLICY_CANCEL: DisconnectPolicy
POD_PHASE_UNSPECIFIED: PodPhase
POD_PHASE_QUEUED: PodPhase
POD_PHASE_PENDING: PodPhase
POD_PHASE_RUNNING: PodPhase
POD_PHASE_SUCCEEDED: PodPhase
POD_PHASE_FAILED: PodPhase
POD_PHASE_CANCELLED: PodPhase
VERDICT_UNSPECIFIED: Verdict
VERDICT_ELIGIBLE: Verdict
VERDICT_NO_CAPACITY: Verdict
VERDICT_REJECTED: Verdict

class PodRequest(_message.Message):
    __slots__ = ("request_id", "pod_json", "placement", "xcom", "logs", "lifecycle", "airflow", "keep_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    POD_JSON_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    XCOM_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    AIRFLOW_FIELD_NUMBER: _ClassVar[int]
    KEEP_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    pod_json: str
    placement: _common_pb2.Placement
    xcom: XcomOptions
    logs: LogOptions
    lifecycle: LifecycleOptions
    airflow: AirflowContext
    keep_name: bool
    def __init__(self, request_id: _Optional[str] = ..., pod_json: _Optional[str] = ..., placement: _Optional[_Union[_common_pb2.Placement, _Mapping]] = ..., xcom: _Optional[_Union[XcomOptions, _Mapping]] = ..., logs: _Optional[_Union[LogOptions, _Mapping]] = ..., lifecycle: _Optional[_Union[LifecycleOptions, _Mapping]] = ..., airflow: _Optional[_Union[AirflowContext, _Mapping]] = ..., keep_name: _Optional[bool] = ...) -> None: ...

class AirflowContext(_message.Message):
    __slots__ = ("dag_id", "task_id", "run_id", "map_index", "try_number")
    DAG_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MAP_INDEX_FIELD_NUMBER: _ClassVar[int]
    TRY_NUMBER_FIELD_NUMBER: _ClassVar[int]
    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    def __init__(self, dag_id: _Optional[str] = ..., task_id: _Optional[str] = ..., run_id: _Optional[str] = ..., map_index: _Optional[int] = ..., try_number: _Optional[int] = ...) -> None: ...

class XcomOptions(_message.Message):
    __slots__ = ("mode", "sidecar_image")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIDECAR_IMAGE_FIELD_NUMBER: _ClassVar[int]
    mode: XcomMode
    sidecar_image: str
    def __init__(self, mode: _Optional[_Union[XcomMode, str]] = ..., sidecar_image: _Optional[str] = ...) -> None: ...

class LogOptions(_message.Message):
    __slots__ = ("selection", "containers")
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    selection: LogSelection
    containers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, selection: _Optional[_Union[LogSelection, str]] = ..., containers: _Optional[_Iterable[str]] = ...) -> None: ...

class LifecycleOptions(_message.Message):
    __slots__ = ("on_finish", "startup_timeout", "on_disconnect", "reattach_grace")
    ON_FINISH_FIELD_NUMBER: _ClassVar[int]
    STARTUP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ON_DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    REATTACH_GRACE_FIELD_NUMBER: _ClassVar[int]
    on_finish: OnFinishAction
    startup_timeout: _duration_pb2.Duration
    on_disconnect: DisconnectPolicy
    reattach_grace: _duration_pb2.Duration
    def __init__(self, on_finish: _Optional[_Union[OnFinishAction, str]] = ..., startup_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., on_disconnect: _Optional[_Union[DisconnectPolicy, str]] = ..., reattach_grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ClusterVerdict(_message.Message):
    __slots__ = ("cluster", "region", "verdict", "reason", "score", "chosen")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    region: str
    verdict: Verdict
    reason: str
    score: float
    chosen: bool
    def __init__(self, cluster: _Optional[str] = ..., region: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., reason: _Optional[str] = ..., score: _Optional[float] = ..., chosen: _Optional[bool] = ...) -> None: ...

class PlacementDecision(_message.Message):
    __slots__ = ("cluster", "region", "reason", "verdicts")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    region: str
    reason: str
    verdicts: _containers.RepeatedCompositeFieldContainer[ClusterVerdict]
    def __init__(self, cluster: _Optional[str] = ..., region: _Optional[str] = ..., reason: _Optional[str] = ..., verdicts: _Optional[_Iterable[_Union[ClusterVerdict, _Mapping]]] = ...) -> None: ...

class KubernetesEvent(_message.Message):
    __slots__ = ("time", "type", "reason", "message", "count")
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    type: str
    reason: str
    message: str
    count: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("container", "time", "text")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    container: str
    time: _timestamp_pb2.Timestamp
    text: str
    def __init__(self, container: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class PhaseChange(_message.Message):
    __slots__ = ("phase", "reason", "message")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    phase: PodPhase
    reason: str
    message: str
    def __init__(self, phase: _Optional[_Union[PodPhase, str]] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ContainerResult(_message.Message):
    __slots__ = ("name", "exit_code", "reason", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    exit_code: int
    reason: str
    message: str
    def __init__(self, name: _Optional[str] = ..., exit_code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class PodResult(_message.Message):
    __slots__ = ("phase", "exit_code", "reason", "message", "containers", "xcom_json", "warning_events")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    XCOM_JSON_FIELD_NUMBER: _ClassVar[int]
    WARNING_EVENTS_FIELD_NUMBER: _ClassVar[int]
    phase: PodPhase
    exit_code: int
    reason: str
    message: str
    containers: _containers.RepeatedCompositeFieldContainer[ContainerResult]
    xcom_json: str
    warning_events: _containers.RepeatedCompositeFieldContainer[KubernetesEvent]
    def __init__(self, phase: _Optional[_Union[PodPhase, str]] = ..., exit_code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., containers: _Optional[_Iterable[_Union[ContainerResult, _Mapping]]] = ..., xcom_json: _Optional[str] = ..., warning_events: _Optional[_Iterable[_Union[KubernetesEvent, _Mapping]]] = ...) -> None: ...

class Pod(_message.Message):
    __slots__ = ("request_id", "phase", "cluster", "region", "namespace", "name", "create_time", "finish_time", "placement", "result", "airflow", "tenant", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    AIRFLOW_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    phase: PodPhase
    cluster: str
    region: str
    namespace: str
    name: str
    create_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    placement: PlacementDecision
    result: PodResult
    airflow: AirflowContext
    tenant: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., phase: _Optional[_Union[PodPhase, str]] = ..., cluster: _Optional[str] = ..., region: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., placement: _Optional[_Union[PlacementDecision, _Mapping]] = ..., result: _Optional[_Union[PodResult, _Mapping]] = ..., airflow: _Optional[_Union[AirflowContext, _Mapping]] = ..., tenant: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PodEvent(_message.Message):
    __slots__ = ("cursor", "time", "placed", "phase", "kubernetes_event", "log", "result")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PLACED_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_EVENT_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    time: _timestamp_pb2.Timestamp
    placed: PlacementDecision
    phase: PhaseChange
    kubernetes_event: KubernetesEvent
    log: LogLine
    result: PodResult
    def __init__(self, cursor: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., placed: _Optional[_Union[PlacementDecision, _Mapping]] = ..., phase: _Optional[_Union[PhaseChange, _Mapping]] = ..., kubernetes_event: _Optional[_Union[KubernetesEvent, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., result: _Optional[_Union[PodResult, _Mapping]] = ...) -> None: ...

class SubmitPodRequest(_message.Message):
    __slots__ = ("pod",)
    POD_FIELD_NUMBER: _ClassVar[int]
    pod: PodRequest
    def __init__(self, pod: _Optional[_Union[PodRequest, _Mapping]] = ...) -> None: ...

class SubmitPodResponse(_message.Message):
    __slots__ = ("pod", "created")
    POD_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    pod: Pod
    created: bool
    def __init__(self, pod: _Optional[_Union[Pod, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class RunPodRequest(_message.Message):
    __slots__ = ("pod",)
    POD_FIELD_NUMBER: _ClassVar[int]
    pod: PodRequest
    def __init__(self, pod: _Optional[_Union[PodRequest, _Mapping]] = ...) -> None: ...

class RunPodResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: PodEvent
    def __init__(self, event: _Optional[_Union[PodEvent, _Mapping]] = ...) -> None: ...

class WatchPodRequest(_message.Message):
    __slots__ = ("request_id", "cursor", "reattach")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    REATTACH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    cursor: str
    reattach: bool
    def __init__(self, request_id: _Optional[str] = ..., cursor: _Optional[str] = ..., reattach: _Optional[bool] = ...) -> None: ...

class WatchPodResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: PodEvent
    def __init__(self, event: _Optional[_Union[PodEvent, _Mapping]] = ...) -> None: ...

class GetPodRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class GetPodResponse(_message.Message):
    __slots__ = ("pod",)
    POD_FIELD_NUMBER: _ClassVar[int]
    pod: Pod
    def __init__(self, pod: _Optional[_Union[Pod, _Mapping]] = ...) -> None: ...

class CancelPodRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelPodResponse(_message.Message):
    __slots__ = ("pod",)
    POD_FIELD_NUMBER: _ClassVar[int]
    pod: Pod
    def __init__(self, pod: _Optional[_Union[Pod, _Mapping]] = ...) -> None: ...

class ListPodsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "cluster", "phases", "dag_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    DAG_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    cluster: str
    phases: _containers.RepeatedScalarFieldContainer[PodPhase]
    dag_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., cluster: _Optional[str] = ..., phases: _Optional[_Iterable[_Union[PodPhase, str]]] = ..., dag_id: _Optional[str] = ...) -> None: ...

class ListPodsResponse(_message.Message):
    __slots__ = ("pods", "next_page_token")
    PODS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pods: _containers.RepeatedCompositeFieldContainer[Pod]
    next_page_token: str
    def __init__(self, pods: _Optional[_Iterable[_Union[Pod, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExplainPlacementRequest(_message.Message):
    __slots__ = ("pod",)
    POD_FIELD_NUMBER: _ClassVar[int]
    pod: PodRequest
    def __init__(self, pod: _Optional[_Union[PodRequest, _Mapping]] = ...) -> None: ...

class ExplainPlacementResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: PlacementDecision
    def __init__(self, decision: _Optional[_Union[PlacementDecision, _Mapping]] = ...) -> None: ...
