"""Cluster and credential protobuf messages <-> the client's dataclasses."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from gateway._proto.podgate.v1 import clusters_pb2, common_pb2, credentials_pb2
from gateway.client import types as t
from gateway.client.convert import time_of

_HEALTH = {
    clusters_pb2.CLUSTER_HEALTH_UNSPECIFIED: t.ClusterHealth.UNKNOWN,
    clusters_pb2.CLUSTER_HEALTH_HEALTHY: t.ClusterHealth.HEALTHY,
    clusters_pb2.CLUSTER_HEALTH_UNREACHABLE: t.ClusterHealth.UNREACHABLE,
    clusters_pb2.CLUSTER_HEALTH_UNAUTHORIZED: t.ClusterHealth.UNAUTHORIZED,
}
ACCESS_TO_PROTO = {
    t.KubeconfigAccess.VIEW: credentials_pb2.KUBECONFIG_ACCESS_VIEW,
    t.KubeconfigAccess.EDIT: credentials_pb2.KUBECONFIG_ACCESS_EDIT,
}


def _taint_of(x: common_pb2.Taint) -> t.Taint:
    return t.Taint(key=x.key, value=x.value, effect=x.effect)


def cluster_to_proto(c: t.Cluster) -> clusters_pb2.Cluster:
    credentials = clusters_pb2.ClusterCredentials()
    json_format.ParseDict(dict(c.credentials), credentials)
    return clusters_pb2.Cluster(
        name=c.name,
        provider=c.provider,
        credentials=credentials,
        region=c.region,
        zone=c.zone,
        labels=dict(c.labels),
        taints=[common_pb2.Taint(key=x.key, value=x.value, effect=x.effect) for x in c.taints],
        allowed_namespaces=list(c.allowed_namespaces),
        max_concurrent_pods=c.max_concurrent_pods,
        weight=c.weight,
        issued_server=c.issued_server,
        aliases=list(c.aliases),
    )


def cluster_of(c: clusters_pb2.Cluster) -> t.Cluster:
    credentials: dict[str, Any] = json_format.MessageToDict(c.credentials)
    return t.Cluster(
        name=c.name,
        provider=c.provider,
        region=c.region,
        credentials=credentials,
        zone=c.zone,
        labels=dict(c.labels),
        taints=tuple(_taint_of(x) for x in c.taints),
        allowed_namespaces=tuple(c.allowed_namespaces),
        max_concurrent_pods=c.max_concurrent_pods,
        weight=c.weight,
        issued_server=c.issued_server,
        aliases=tuple(c.aliases),
    )


def _node_of(n: clusters_pb2.NodeCapacity) -> t.NodeCapacity:
    return t.NodeCapacity(
        name=n.name,
        labels=dict(n.labels),
        cpu_millis_free=n.cpu_millis_free,
        memory_bytes_free=n.memory_bytes_free,
        gpus_free=n.gpus_free,
        gpu_type=n.gpu_type,
        schedulable=n.schedulable,
        cpu_millis_allocatable=n.cpu_millis_allocatable,
        memory_bytes_allocatable=n.memory_bytes_allocatable,
        gpus_allocatable=n.gpus_allocatable,
    )


def status_of(s: clusters_pb2.ClusterStatus) -> t.ClusterStatus:
    return t.ClusterStatus(
        health=_HEALTH.get(s.health, t.ClusterHealth.UNKNOWN),
        health_message=s.health_message,
        last_seen=time_of(s.last_seen),
        cordoned=s.cordoned,
        cordon_reason=s.cordon_reason,
        running_pods=s.running_pods,
        cpu_millis_free=s.cpu_millis_free,
        memory_bytes_free=s.memory_bytes_free,
        gpus_free=dict(s.gpus_free),
        gpus_total=dict(s.gpus_total),
        nodes=tuple(_node_of(n) for n in s.nodes),
        effective_taints=tuple(_taint_of(x) for x in s.effective_taints),
    )


def cluster_info_of(i: clusters_pb2.ClusterInfo) -> t.ClusterInfo:
    return t.ClusterInfo(cluster=cluster_of(i.cluster), status=status_of(i.status), source=i.source)


def kubeconfig_of(r: credentials_pb2.IssueKubeconfigResponse) -> t.IssuedKubeconfig:
    return t.IssuedKubeconfig(
        kubeconfig=r.kubeconfig,
        expire_time=time_of(r.expire_time),
        credential_id=r.credential_id,
        service_account=r.service_account,
    )
