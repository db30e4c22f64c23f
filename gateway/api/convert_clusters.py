"""Cluster protobuf messages <-> domain types.

Credential sources travel as a typed oneof in the API and as `CredentialsRef(source, params)` in the
domain, with params keyed by the same camelCase names the cluster YAML files use.
"""

from __future__ import annotations

import re
from datetime import datetime

from gateway import domain, errors
from gateway._proto.podgate.v1 import clusters_pb2, common_pb2

_SOURCES = {
    "in_cluster": "in-cluster",
    "kubeconfig": "kubeconfig",
    "eks": "eks",
    "gke": "gke",
    "aks": "aks",
    "sim": "sim",
}
_ONEOF_OF_SOURCE = {v: k for k, v in _SOURCES.items()}
_HEALTH = {
    domain.ClusterHealth.UNKNOWN: clusters_pb2.CLUSTER_HEALTH_UNSPECIFIED,
    domain.ClusterHealth.HEALTHY: clusters_pb2.CLUSTER_HEALTH_HEALTHY,
    domain.ClusterHealth.UNREACHABLE: clusters_pb2.CLUSTER_HEALTH_UNREACHABLE,
    domain.ClusterHealth.UNAUTHORIZED: clusters_pb2.CLUSTER_HEALTH_UNAUTHORIZED,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# API field names whose cluster-file key differs from their camelCase form.
_RENAMED = {("sim", "kubeconfigPath"): "path"}
_RENAMED_BACK = {(source, new): old for (source, old), new in _RENAMED.items()}


def credentials_from_proto(c: clusters_pb2.ClusterCredentials, provider: str) -> domain.CredentialsRef:
    which = c.WhichOneof("source")
    if which is None:
        # The provider's own default chain (e.g. in-cluster, ADC, DefaultAzureCredential).
        return domain.CredentialsRef(source=provider, params={})
    message, source = getattr(c, which), _SOURCES[which]
    params = {}
    for f, value in message.ListFields():
        key = _camel(f.name)
        params[_RENAMED.get((source, key), key)] = str(value)
    return domain.CredentialsRef(source=source, params=params)


def credentials_to_proto(ref: domain.CredentialsRef) -> clusters_pb2.ClusterCredentials:
    out = clusters_pb2.ClusterCredentials()
    field = _ONEOF_OF_SOURCE.get(ref.source)
    if field is None:
        return out
    message = getattr(out, field)
    message.SetInParent()
    for key, value in ref.params.items():
        name = _snake(_RENAMED_BACK.get((ref.source, key), key))
        if name in message.DESCRIPTOR.fields_by_name:
            setattr(message, name, value)
    return out


def taint_from_proto(t: common_pb2.Taint, field: str) -> domain.Taint:
    try:
        effect = domain.TaintEffect(t.effect or domain.TaintEffect.NO_SELECT)
    except ValueError:
        raise errors.InvalidArgument(
            f"{field}.effect must be NoSelect or PreferNoSelect, got {t.effect!r}",
            [errors.FieldViolation(field=f"{field}.effect", description="must be NoSelect or PreferNoSelect")],
        ) from None
    return domain.Taint(key=t.key, value=t.value, effect=effect)


def taint_to_proto(t: domain.Taint) -> common_pb2.Taint:
    return common_pb2.Taint(key=t.key, value=t.value, effect=str(t.effect))


def spec_from_proto(c: clusters_pb2.Cluster) -> domain.ClusterSpec:
    """Shape only; the registry validates names, labels and references with the cluster-file rules."""
    return domain.ClusterSpec(
        name=c.name,
        provider=c.provider,
        credentials=credentials_from_proto(c.credentials, c.provider),
        region=c.region,
        zone=c.zone,
        labels=dict(c.labels),
        taints=tuple(taint_from_proto(t, f"cluster.taints[{i}]") for i, t in enumerate(c.taints)),
        allowed_namespaces=frozenset(c.allowed_namespaces) or frozenset({"default"}),
        max_concurrent_pods=c.max_concurrent_pods,
        weight=c.weight or 100,
        issued_server=c.issued_server,
        source="api",
        aliases=tuple(c.aliases),
    )


def spec_to_proto(s: domain.ClusterSpec) -> clusters_pb2.Cluster:
    return clusters_pb2.Cluster(
        name=s.name,
        provider=s.provider,
        credentials=credentials_to_proto(s.credentials),
        region=s.region,
        zone=s.zone,
        labels=dict(s.labels),
        taints=[taint_to_proto(t) for t in s.taints],
        allowed_namespaces=sorted(s.allowed_namespaces),
        max_concurrent_pods=s.max_concurrent_pods,
        weight=s.weight,
        issued_server=s.issued_server,
        aliases=list(s.aliases),
    )


def _gpus_by_type(nodes: tuple[domain.NodeState, ...], *, free: bool = True) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in nodes:
        if n.gpus and n.schedulable and n.ready:
            key = n.gpu_type or "unknown"
            out[key] = out.get(key, 0) + (n.gpus_free if free else n.gpus)
    return out


def snapshot_to_proto(
    snap: domain.ClusterSnapshot, *, health_message: str = "", last_probe: datetime | None = None
) -> clusters_pb2.ClusterInfo:
    usable = [n for n in snap.nodes if n.schedulable and n.ready]
    status = clusters_pb2.ClusterStatus(
        health=_HEALTH[snap.health],
        health_message=health_message,
        cordoned=snap.cordoned,
        cordon_reason=snap.cordon_reason,
        running_pods=snap.running_pods,
        cpu_millis_free=sum(n.cpu_millis_free for n in usable),
        memory_bytes_free=sum(n.memory_bytes_free for n in usable),
        gpus_free=_gpus_by_type(snap.nodes),
        gpus_total=_gpus_by_type(snap.nodes, free=False),
        nodes=[
            clusters_pb2.NodeCapacity(
                name=n.name,
                labels=dict(n.labels),
                cpu_millis_free=n.cpu_millis_free,
                memory_bytes_free=n.memory_bytes_free,
                gpus_free=n.gpus_free,
                gpu_type=n.gpu_type,
                schedulable=n.schedulable and n.ready,
                cpu_millis_allocatable=n.cpu_millis,
                memory_bytes_allocatable=n.memory_bytes,
                gpus_allocatable=n.gpus,
            )
            for n in snap.nodes
        ],
        effective_taints=[taint_to_proto(t) for t in snap.effective_taints],
    )
    if last_probe is not None:
        status.last_seen.FromDatetime(last_probe)
    return clusters_pb2.ClusterInfo(cluster=spec_to_proto(snap.spec), status=status, source=snap.spec.source)
