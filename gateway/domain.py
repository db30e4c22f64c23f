"""Domain types shared by every layer of the gateway.

Plain frozen dataclasses: no I/O, no protobuf, no Kubernetes client objects. The API
layer converts protobuf messages to these at the edge; everything below works on them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T")

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# Marks the pods a gateway created (value: the gateway id): its watches track them, its collector owns them.
MANAGED_BY_LABEL = "podgate.io/managed-by"

# Where a request's Pod manifest is (PodRequest.pod_json), as field violations name it.
MANIFEST_FIELD = "pod.pod_json"

PROVIDERS = frozenset({"in-cluster", "kubeconfig", "eks", "gke", "aks", "sim"})


# --- selectors, taints, tolerations -------------------------------------------------------


class Operator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


@dataclass(frozen=True, kw_only=True)
class Requirement:
    """One selector requirement; `a=b` is `In (b)`, `a!=b` is `NotIn (b)`."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Selector:
    """A label selector: every requirement must hold. Empty matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.requirements)


class TaintEffect(enum.StrEnum):
    NO_SELECT = "NoSelect"
    PREFER_NO_SELECT = "PreferNoSelect"


@dataclass(frozen=True, kw_only=True)
class Taint:
    key: str
    value: str = ""
    effect: TaintEffect = TaintEffect.NO_SELECT

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass(frozen=True, kw_only=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # Equal or Exists
    value: str = ""
    effect: str = ""  # empty tolerates every effect


UNREACHABLE_TAINT = Taint(key="podgate.io/unreachable", effect=TaintEffect.NO_SELECT)
CORDONED_TAINT = Taint(key="podgate.io/cordoned", effect=TaintEffect.NO_SELECT)


@dataclass(frozen=True, kw_only=True)
class Preference:
    weight: int
    selector: Selector


@dataclass(frozen=True, kw_only=True)
class PlacementSpec:
    """The caller's constraints. Regions are data residency: never relaxed."""

    selector: Selector = Selector()
    regions: frozenset[str] = frozenset()
    clusters: frozenset[str] = frozenset()
    tolerations: tuple[Toleration, ...] = ()
    preferences: tuple[Preference, ...] = ()
    timeout_seconds: float = 0.0


# --- clusters -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CredentialsRef:
    """Where a cluster's credentials come from: references only, never a secret value."""

    source: str  # one of PROVIDERS
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    name: str
    provider: str
    credentials: CredentialsRef
    region: str
    zone: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    allowed_namespaces: frozenset[str] = frozenset({"default"})
    max_concurrent_pods: int = 0  # 0: unlimited
    weight: int = 100
    issued_server: str = ""  # the API server URL issued kubeconfigs carry; "" for the one the gateway uses
    source: str = "api"  # a file path or "api"
    # Other names requests may use (e.g. an Airflow kubernetes_conn_id), resolved to `name` at submission.
    aliases: tuple[str, ...] = ()


class ClusterHealth(enum.StrEnum):
    """Spelled as the client spells it (tests/unit/test_enum_parity.py); UNKNOWN: not probed yet."""

    UNKNOWN = "Unknown"
    HEALTHY = "Healthy"
    UNREACHABLE = "Unreachable"
    UNAUTHORIZED = "Unauthorized"


@dataclass(frozen=True, kw_only=True)
class NodeTaint:
    """A Kubernetes node taint (NoSchedule, PreferNoSchedule, NoExecute)."""

    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True, kw_only=True)
class NodeState:
    """One node as placement sees it: what it offers and what is already asked of it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[NodeTaint, ...] = ()
    schedulable: bool = True
    ready: bool = True
    cpu_millis: int = 0  # allocatable
    memory_bytes: int = 0
    gpus: int = 0
    cpu_millis_used: int = 0  # sum of requests of non-terminated pods bound here
    memory_bytes_used: int = 0
    gpus_used: int = 0

    @property
    def gpu_type(self) -> str:
        return self.labels.get(GPU_PRODUCT_LABEL, "")

    @property
    def cpu_millis_free(self) -> int:
        return max(0, self.cpu_millis - self.cpu_millis_used)

    @property
    def memory_bytes_free(self) -> int:
        return max(0, self.memory_bytes - self.memory_bytes_used)

    @property
    def gpus_free(self) -> int:
        return max(0, self.gpus - self.gpus_used)


@dataclass(frozen=True, kw_only=True)
class ClusterSnapshot:
    """A cluster at one instant, as placement reads it."""

    spec: ClusterSpec
    health: ClusterHealth = ClusterHealth.UNKNOWN
    cordoned: bool = False
    cordon_reason: str = ""
    nodes: tuple[NodeState, ...] = ()
    running_pods: int = 0  # gateway pods not yet finished on this cluster

    @property
    def effective_taints(self) -> tuple[Taint, ...]:
        extra: list[Taint] = []
        if self.health is ClusterHealth.UNREACHABLE:
            extra.append(UNREACHABLE_TAINT)
        if self.cordoned:
            extra.append(CORDONED_TAINT)
        return (*self.spec.taints, *extra)


# --- placement decisions ------------------------------------------------------------------


class Verdict(enum.StrEnum):
    ELIGIBLE = "Eligible"
    NO_CAPACITY = "NoCapacity"  # hard constraints hold; may fit later
    REJECTED = "Rejected"  # violates a hard constraint; never chosen

    @classmethod
    def _missing_(cls, value: object) -> Verdict | None:
        """Records stored before the spellings were aligned say "eligible", "no-capacity", "rejected"."""
        legacy = {"eligible": cls.ELIGIBLE, "no-capacity": cls.NO_CAPACITY, "rejected": cls.REJECTED}
        return legacy.get(value) if isinstance(value, str) else None


@dataclass(frozen=True, kw_only=True)
class ClusterVerdict:
    cluster: str
    region: str
    verdict: Verdict
    reason: str
    score: float = 0.0
    chosen: bool = False


@dataclass(frozen=True, kw_only=True)
class PlacementDecision:
    """Every cluster's verdict, best first; `cluster` is empty when none was chosen.

    A decision may be made before its table (`deferred`): choosing among 1,000 clusters takes well under
    a millisecond, the table of every cluster's reason twenty times that. Its `verdicts` are then built the
    first time anything reads them (storing, comparing, showing the decision), from inputs captured when
    the decision was made, so they are what they would have been then; readers see an ordinary tuple.
    """

    verdicts: tuple[ClusterVerdict, ...]
    cluster: str = ""
    region: str = ""
    reason: str = ""

    @classmethod
    def deferred(
        cls,
        table: Callable[[], tuple[ClusterVerdict, ...]],
        candidate_names: Callable[[], tuple[str, ...]],
        *,
        cluster: str,
        region: str,
        reason: str,
    ) -> PlacementDecision:
        """A decision whose `verdicts` are `table()` and `candidate_names` `candidate_names()`, each on first read."""
        decision = cls.__new__(cls)
        for name, value in (("cluster", cluster), ("region", region), ("reason", reason)):
            object.__setattr__(decision, name, value)
        decision.__dict__.update(_table=table, _names=candidate_names)
        return decision

    if not TYPE_CHECKING:  # for the type checker `verdicts` stays a plain field

        def __getattr__(self, name: str) -> Any:
            """Reached only for a missing attribute: the `verdicts` of a deferred decision, built once."""
            table = self.__dict__.get("_table")
            if name != "verdicts" or table is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            self.__dict__["verdicts"] = verdicts = table()
            del self.__dict__["_table"]
            return verdicts

    @property
    def candidate_names(self) -> tuple[str, ...]:
        """The names of `candidates`; a deferred decision knows them without building its table."""
        names = self.__dict__.get("_names")
        if names is None:
            return tuple(v.cluster for v in self.candidates)
        if callable(names):
            self.__dict__["_names"] = names = names()
        return tuple(names)

    @property
    def candidates(self) -> tuple[ClusterVerdict, ...]:
        """Eligible clusters in order of preference: the failover sequence."""
        return tuple(v for v in self.verdicts if v.verdict is Verdict.ELIGIBLE)

    @property
    def may_fit_later(self) -> bool:
        return any(v.verdict is Verdict.NO_CAPACITY for v in self.verdicts)


# --- pods ---------------------------------------------------------------------------------


class XcomMode(enum.StrEnum):
    DISABLED = "disabled"
    AUTO = "auto"
    SIDECAR = "sidecar"


class LogSelection(enum.StrEnum):
    MAIN = "main"
    ALL = "all"
    NAMED = "named"
    NONE = "none"


class OnFinishAction(enum.StrEnum):
    DELETE_POD = "delete_pod"
    KEEP_POD = "keep_pod"
    DELETE_SUCCEEDED_POD = "delete_succeeded_pod"


class DisconnectPolicy(enum.StrEnum):
    KEEP_RUNNING = "keep_running"
    CANCEL = "cancel"


@dataclass(frozen=True, kw_only=True)
class AirflowContext:
    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1


@dataclass(frozen=True, kw_only=True)
class PodRequest:
    request_id: str
    pod: Mapping[str, Any]  # a Kubernetes Pod manifest
    placement: PlacementSpec = PlacementSpec()
    xcom_mode: XcomMode = XcomMode.DISABLED
    xcom_sidecar_image: str = ""
    log_selection: LogSelection = LogSelection.MAIN
    log_containers: tuple[str, ...] = ()
    on_finish: OnFinishAction = OnFinishAction.DELETE_POD
    startup_timeout_seconds: float = 120.0
    on_disconnect: DisconnectPolicy = DisconnectPolicy.KEEP_RUNNING
    reattach_grace_seconds: float = 300.0
    airflow: AirflowContext | None = None
    tenant: str = ""
    keep_name: bool = False  # metadata.name as is, no unique suffix

    def derived(self, read: Callable[[Mapping[str, Any]], T]) -> T:
        """`read(self.pod)`, worked out once for this request and kept with it: a fact several layers read
        from the manifest (placement's `pod_needs`: validation, quotas and both placements of a pod).

        Sound because nobody changes a request's manifest in place (a read-only Mapping everywhere). Kept
        outside the dataclass's fields, so never compared, shown or stored (a request decoded from the store
        works it out again from the manifest), nor carried by `dataclasses.replace` (`replaced` carries it).
        A `read` that raises keeps nothing: the next call raises afresh, as before. Two threads (the store's
        quota recheck runs in its writer's) may both work it out once: the same value, one of them kept."""
        kept: dict[Any, Any] | None = self.__dict__.get("_derived")
        if kept is None:
            kept = self.__dict__["_derived"] = {}
        if read in kept:
            value: T = kept[read]
            return value
        kept[read] = value = read(self.pod)
        return value

    def replaced(self, **changes: Any) -> PodRequest:
        """`dataclasses.replace(self, **changes)` keeping what `derived` read, when the manifest is the same."""
        out = replace(self, **changes)
        kept = self.__dict__.get("_derived")
        if kept and out.pod is self.pod:
            out.__dict__["_derived"] = dict(kept)
        return out


class PodPhase(enum.StrEnum):
    QUEUED = "Queued"
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (PodPhase.SUCCEEDED, PodPhase.FAILED, PodPhase.CANCELLED)


@dataclass(frozen=True, kw_only=True)
class KubernetesEvent:
    time: datetime
    type: str  # Normal or Warning
    reason: str
    message: str
    count: int = 1


@dataclass(frozen=True, kw_only=True)
class LogLine:
    container: str
    time: datetime
    text: str


@dataclass(frozen=True, kw_only=True)
class ContainerResult:
    name: str
    exit_code: int
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class PodResult:
    phase: PodPhase
    exit_code: int = -1
    reason: str = ""
    message: str = ""
    containers: tuple[ContainerResult, ...] = ()
    xcom_json: str | None = None
    warning_events: tuple[KubernetesEvent, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PodRecord:
    """The gateway's durable record of one request and the pod it became."""

    request: PodRequest
    phase: PodPhase
    cluster: str = ""
    region: str = ""
    namespace: str = ""
    name: str = ""
    created_at: datetime | None = None
    finished_at: datetime | None = None
    decision: PlacementDecision | None = None
    result: PodResult | None = None
    last_seq: int = 0  # the journal's last event (the last cursor a client can hold)
    # When a client that ran the pod left early: the pod is cancelled at this time unless one reattaches.
    reattach_deadline: datetime | None = None
    # A cancel asked for and stored, not yet carried out: whoever runs the request, now or after a takeover
    # or restart, cancels it.
    cancel_requested_at: datetime | None = None
    cancel_reason: str = ""


# --- the event journal --------------------------------------------------------------------


class JournalKind(enum.StrEnum):
    PLACED = "placed"
    PHASE = "phase"
    K8S_EVENT = "k8s_event"
    LOG = "log"
    RESULT = "result"


@dataclass(frozen=True, kw_only=True)
class JournalEvent:
    """One durable entry of a request's event stream; RunPod/WatchPod replay these from a cursor.

    The payload is plain JSON data (the API layer converts to and from domain types), so the journal
    never needs a migration when an event grows a field.
    """

    kind: JournalKind
    time: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


# --- the event stream of one pod (RunPod / WatchPod) --------------------------------------


@dataclass(frozen=True, kw_only=True)
class PhaseChange:
    phase: PodPhase
    reason: str = ""
    message: str = ""


StreamItem = PlacementDecision | PhaseChange | KubernetesEvent | LogLine | PodResult


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """One journalled item of a pod's stream; `seq` increases by one per request and is the resume cursor."""

    seq: int
    time: datetime
    item: StreamItem
