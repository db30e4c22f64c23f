import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gateway._proto.podgate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLUSTER_HEALTH_UNSPECIFIED: _ClassVar[ClusterHealth]
    CLUSTER_HEALTH_HEALTHY: _ClassVar[ClusterHealth]
    CLUSTER_HEALTH_UNREACHABLE: _ClassVar[ClusterHealth]
    CLUSTER_HEALTH_UNAUTHORIZED: _ClassVar[ClusterHealth]
CLUSTER_HEALTH_UNSPECIFIED: ClusterHealth
CLUSTER_HEALTH_HEALTHY: ClusterHealth
CLUSTER_HEALTH_UNREACHABLE: ClusterHealth
CLUSTER_HEALTH_UNAUTHORIZED: ClusterHealth

class ClusterCredentials(_message.Message):
    __slots__ = ("in_cluster", "kubeconfig", "eks", "gke", "aks", "sim")
    IN_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    KUBECONFIG_FIELD_NUMBER: _ClassVar[int]
    EKS_FIELD_NUMBER: _ClassVar[int]
    GKE_FIELD_NUMBER: _ClassVar[int]
    AKS_FIELD_NUMBER: _ClassVar[int]
    SIM_FIELD_NUMBER: _ClassVar[int]
    in_cluster: InClusterSource
    kubeconfig: KubeconfigSource
    eks: EksSource
    gke: GkeSource
    aks: AksSource
    sim: SimSource
    def __init__(self, in_cluster: _Optional[_Union[InClusterSource, _Mapping]] = ..., kubeconfig: _Optional[_Union[KubeconfigSource, _Mapping]] = ..., eks: _Optional[_Union[EksSource, _Mapping]] = ..., gke: _Optional[_Union[GkeSource, _Mapping]] = ..., aks: _Optional[_Union[AksSource, _Mapping]] = ..., sim: _Optional[_Union[SimSource, _Mapping]] = ...) -> None: ...

class InClusterSource(_message.Message):
    __slots__ = ("token_dir",)
    TOKEN_DIR_FIELD_NUMBER: _ClassVar[int]
    token_dir: str
    def __init__(self, token_dir: _Optional[str] = ...) -> None: ...

class KubeconfigSource(_message.Message):
    __slots__ = ("path", "env_var", "context")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ENV_VAR_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    path: str
    env_var: str
    context: str
    def __init__(self, path: _Optional[str] = ..., env_var: _Optional[str] = ..., context: _Optional[str] = ...) -> None: ...

class EksSource(_message.Message):
    __slots__ = ("cluster_name", "region", "role_arn", "profile", "eks_endpoint_url", "sts_endpoint_url")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ROLE_ARN_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    EKS_ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    STS_ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    region: str
    role_arn: str
    profile: str
    eks_endpoint_url: str
    sts_endpoint_url: str
    def __init__(self, cluster_name: _Optional[str] = ..., region: _Optional[str] = ..., role_arn: _Optional[str] = ..., profile: _Optional[str] = ..., eks_endpoint_url: _Optional[str] = ..., sts_endpoint_url: _Optional[str] = ...) -> None: ...

class GkeSource(_message.Message):
    __slots__ = ("project", "location", "cluster_name", "key_file", "impersonate_service_account", "container_endpoint_url")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    IMPERSONATE_SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    project: str
    location: str
    cluster_name: str
    key_file: str
    impersonate_service_account: str
    container_endpoint_url: str
    def __init__(self, project: _Optional[str] = ..., location: _Optional[str] = ..., cluster_name: _Optional[str] = ..., key_file: _Optional[str] = ..., impersonate_service_account: _Optional[str] = ..., container_endpoint_url: _Optional[str] = ...) -> None: ...

class AksSource(_message.Message):
    __slots__ = ("subscription_id", "resource_group", "cluster_name", "server", "ca_file", "tenant_id", "client_id", "client_secret_env", "authority_host", "arm_endpoint_url")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_GROUP_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    CA_FILE_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_ENV_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_HOST_FIELD_NUMBER: _ClassVar[int]
    ARM_ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    resource_group: str
    cluster_name: str
    server: str
    ca_file: str
    tenant_id: str
    client_id: str
    client_secret_env: str
    authority_host: str
    arm_endpoint_url: str
    def __init__(self, subscription_id: _Optional[str] = ..., resource_group: _Optional[str] = ..., cluster_name: _Optional[str] = ..., server: _Optional[str] = ..., ca_file: _Optional[str] = ..., tenant_id: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret_env: _Optional[str] = ..., authority_host: _Optional[str] = ..., arm_endpoint_url: _Optional[str] = ...) -> None: ...

class SimSource(_message.Message):
    __slots__ = ("kubeconfig_path",)
    KUBECONFIG_PATH_FIELD_NUMBER: _ClassVar[int]
    kubeconfig_path: str
    def __init__(self, kubeconfig_path: _Optional[str] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("name", "provider", "credentials", "region", "zone", "labels", "taints", "allowed_namespaces", "max_concurrent_pods", "weight", "issued_server", "aliases")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TAINTS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_PODS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_SERVER_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    credentials: ClusterCredentials
    region: str
    zone: str
    labels: _containers.ScalarMap[str, str]
    taints: _containers.RepeatedCompositeFieldContainer[_common_pb2.Taint]
    allowed_namespaces: _containers.RepeatedScalarFieldContainer[str]
    max_concurrent_pods: int
    weight: int
    issued_server: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., credentials: _Optional[_Union[ClusterCredentials, _Mapping]] = ..., region: _Optional[str] = ..., zone: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., taints: _Optional[_Iterable[_Union[_common_pb2.Taint, _Mapping]]] = ..., allowed_namespaces: _Optional[_Iterable[str]] = ..., max_concurrent_pods: _Optional[int] = ..., weight: _Optional[int] = ..., issued_server: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class NodeCapacity(_message.Message):
    __slots__ = ("name", "labels", "cpu_millis_free", "memory_bytes_free", "gpus_free", "gpu_type", "schedulable", "cpu_millis_allocatable", "memory_bytes_allocatable", "gpus_allocatable")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CPU_MILLIS_FREE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FREE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FREE_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULABLE_FIELD_NUMBER: _ClassVar[int]
    CPU_MILLIS_ALLOCATABLE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_ALLOCATABLE_FIELD_NUMBER: _ClassVar[int]
    GPUS_ALLOCATABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    cpu_millis_free: int
    memory_bytes_free: int
    gpus_free: int
    gpu_type: str
    schedulable: bool
    cpu_millis_allocatable: int
    memory_bytes_allocatable: int
    gpus_allocatable: int
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., cpu_millis_free: _Optional[int] = ..., memory_bytes_free: _Optional[int] = ..., gpus_free: _Optional[int] = ..., gpu_type: _Optional[str] = ..., schedulable: _Optional[bool] = ..., cpu_millis_allocatable: _Optional[int] = ..., memory_bytes_allocatable: _Optional[int] = ..., gpus_allocatable: _Optional[int] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("health", "health_message", "last_seen", "cordoned", "cordon_reason", "running_pods", "cpu_millis_free", "memory_bytes_free", "gpus_free", "nodes", "effective_taints", "gpus_total")
    class GpusFreeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class GpusTotalEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    HEALTH_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    CORDONED_FIELD_NUMBER: _ClassVar[int]
    CORDON_REASON_FIELD_NUMBER: _ClassVar[int]
    RUNNING_PODS_FIELD_NUMBER: _ClassVar[int]
    CPU_MILLIS_FREE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FREE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FREE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_TAINTS_FIELD_NUMBER: _ClassVar[int]
    GPUS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    health: ClusterHealth
    health_message: str
    last_seen: _timestamp_pb2.Timestamp
    cordoned: bool
    cordon_reason: str
    running_pods: int
    cpu_millis_free: int
    memory_bytes_free: int
    gpus_free: _containers.ScalarMap[str, int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeCapacity]
    effective_taints: _containers.RepeatedCompositeFieldContainer[_common_pb2.Taint]
    gpus_total: _containers.ScalarMap[str, int]
    def __init__(self, health: _Optional[_Union[ClusterHealth, str]] = ..., health_message: _Optional[str] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cordoned: _Optional[bool] = ..., cordon_reason: _Optional[str] = ..., running_pods: _Optional[int] = ..., cpu_millis_free: _Optional[int] = ..., memory_bytes_free: _Optional[int] = ..., gpus_free: _Optional[_Mapping[str, int]] = ..., nodes: _Optional[_Iterable[_Union[NodeCapacity, _Mapping]]] = ..., effective_taints: _Optional[_Iterable[_Union[_common_pb2.Taint, _Mapping]]] = ..., gpus_total: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ClusterInfo(_message.Message):
    __slots__ = ("cluster", "status", "source")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    cluster: Cluster
    status: ClusterStatus
    source: str
    def __init__(self, cluster: _Optional[_Union[Cluster, _Mapping]] = ..., status: _Optional[_Union[ClusterStatus, _Mapping]] = ..., source: _Optional[str] = ...) -> None: ...

class RegisterClusterRequest(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: Cluster
    def __init__(self, cluster: _Optional[_Union[Cluster, _Mapping]] = ...) -> None: ...

class RegisterClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: ClusterInfo
    def __init__(self, cluster: _Optional[_Union[ClusterInfo, _Mapping]] = ...) -> None: ...

class UpdateClusterRequest(_message.Message):
    __slots__ = ("cluster", "update_mask")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    cluster: Cluster
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, cluster: _Optional[_Union[Cluster, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: ClusterInfo
    def __init__(self, cluster: _Optional[_Union[ClusterInfo, _Mapping]] = ...) -> None: ...

class DeregisterClusterRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeregisterClusterResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: ClusterInfo
    def __init__(self, cluster: _Optional[_Union[ClusterInfo, _Mapping]] = ...) -> None: ...

class ListClustersRequest(_message.Message):
    __slots__ = ("selector",)
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    selector: _common_pb2.LabelSelector
    def __init__(self, selector: _Optional[_Union[_common_pb2.LabelSelector, _Mapping]] = ...) -> None: ...

class ListClustersResponse(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[ClusterInfo]
    def __init__(self, clusters: _Optional[_Iterable[_Union[ClusterInfo, _Mapping]]] = ...) -> None: ...

class CordonClusterRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CordonClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: ClusterInfo
    def __init__(self, cluster: _Optional[_Union[ClusterInfo, _Mapping]] = ...) -> None: ...

class UncordonClusterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UncordonClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: ClusterInfo
    def __init__(self, cluster: _Optional[_Union[ClusterInfo, _Mapping]] = ...) -> None: ...
