"""What the client hands back: plain frozen dataclasses, so callers never touch generated protobuf classes."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class PodPhase(enum.StrEnum):
    UNSPECIFIED = "Unspecified"
    QUEUED = "Queued"
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (PodPhase.SUCCEEDED, PodPhase.FAILED, PodPhase.CANCELLED)


class Verdict(enum.StrEnum):
    UNSPECIFIED = "Unspecified"
    ELIGIBLE = "Eligible"
    NO_CAPACITY = "NoCapacity"
    REJECTED = "Rejected"


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
    """Empty `cluster` means none was chosen; `verdicts` lists every registered cluster, best first."""

    cluster: str = ""
    region: str = ""
    reason: str = ""
    verdicts: tuple[ClusterVerdict, ...] = ()


@dataclass(frozen=True, kw_only=True)
class KubernetesEvent:
    time: datetime | None
    type: str
    reason: str
    message: str
    count: int = 1


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

    @property
    def succeeded(self) -> bool:
        return self.phase == PodPhase.SUCCEEDED

    def xcom(self) -> Any:
        """The decoded /airflow/xcom/return.json; None when the pod wrote none (as KubernetesPodOperator)."""
        if self.xcom_json is None or not self.xcom_json.strip():
            return None
        return json.loads(self.xcom_json)


@dataclass(frozen=True, kw_only=True)
class AirflowContext:
    """The task instance a pod belongs to; map_index -1 for an unmapped task."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1


@dataclass(frozen=True, kw_only=True)
class PodInfo:
    """The gateway's record of a pod."""

    request_id: str
    phase: PodPhase
    cluster: str = ""
    region: str = ""
    namespace: str = ""
    name: str = ""
    create_time: datetime | None = None
    finish_time: datetime | None = None
    placement: PlacementDecision | None = None
    result: PodResult | None = None
    airflow: AirflowContext | None = None
    tenant: str = ""
    # metadata.labels of the requested manifest
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Submitted:
    pod: PodInfo
    # False when the request id named an existing pod and nothing new was created.
    created: bool


@dataclass(frozen=True, kw_only=True)
class PodPage:
    pods: tuple[PodInfo, ...]
    next_page_token: str = ""


# --- the event stream of RunPod / WatchPod -----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Placed:
    cursor: str
    time: datetime | None
    decision: PlacementDecision


@dataclass(frozen=True, kw_only=True)
class Phase:
    cursor: str
    time: datetime | None
    phase: PodPhase
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class Notice:
    cursor: str
    time: datetime | None
    event: KubernetesEvent


@dataclass(frozen=True, kw_only=True)
class Log:
    cursor: str
    time: datetime | None
    container: str
    text: str
    # The kubelet's timestamp of the line.
    log_time: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Result:
    """Always the last event of a stream that ends normally."""

    cursor: str
    time: datetime | None
    result: PodResult


PodEvent = Placed | Phase | Notice | Log | Result


# --- clusters and kubeconfigs ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSelect"

    def __str__(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key}{value}:{self.effect}"


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """A cluster registration. `credentials` is the proto's JSON form, e.g. {"kubeconfig": {"path": "..."}}:
    references only, never a secret."""

    name: str
    provider: str
    region: str
    credentials: Mapping[str, Any] = field(default_factory=dict)
    zone: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    allowed_namespaces: tuple[str, ...] = ()
    max_concurrent_pods: int = 0
    weight: int = 100
    issued_server: str = ""  # the API server URL issued kubeconfigs carry ("": the gateway's)
    # Other names requests may use for the cluster, e.g. an Airflow kubernetes_conn_id.
    aliases: tuple[str, ...] = ()


class ClusterHealth(enum.StrEnum):
    UNKNOWN = "Unknown"  # not probed yet (CLUSTER_HEALTH_UNSPECIFIED)
    HEALTHY = "Healthy"
    UNREACHABLE = "Unreachable"
    UNAUTHORIZED = "Unauthorized"


@dataclass(frozen=True, kw_only=True)
class NodeCapacity:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu_millis_free: int = 0
    memory_bytes_free: int = 0
    gpus_free: int = 0
    gpu_type: str = ""
    schedulable: bool = True
    cpu_millis_allocatable: int = 0
    memory_bytes_allocatable: int = 0
    gpus_allocatable: int = 0


@dataclass(frozen=True, kw_only=True)
class ClusterStatus:
    health: ClusterHealth = ClusterHealth.UNKNOWN
    health_message: str = ""
    last_seen: datetime | None = None
    cordoned: bool = False
    cordon_reason: str = ""
    running_pods: int = 0
    cpu_millis_free: int = 0
    memory_bytes_free: int = 0
    gpus_free: Mapping[str, int] = field(default_factory=dict)
    gpus_total: Mapping[str, int] = field(default_factory=dict)
    nodes: tuple[NodeCapacity, ...] = ()
    effective_taints: tuple[Taint, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ClusterInfo:
    cluster: Cluster
    status: ClusterStatus
    source: str = ""


class KubeconfigAccess(enum.StrEnum):
    VIEW = "view"
    EDIT = "edit"


@dataclass(frozen=True, kw_only=True)
class IssuedKubeconfig:
    """`kubeconfig` holds a bearer token: never log it."""

    kubeconfig: str = field(repr=False)
    expire_time: datetime | None
    credential_id: str
    service_account: str = ""
