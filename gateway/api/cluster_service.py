"""ClusterService: registration, cordon and status of clusters, delegated to the Registry.

Changes need the admin role and are audited; a tenant sees only the clusters it may use (another
cluster answers NOT_FOUND, exactly as an unknown one, so names do not leak).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import field_mask_pb2

from gateway import errors
from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc
from gateway.api import convert_clusters as cv
from gateway.api.access import AccessControl, current_caller
from gateway.api.audit import AuditEvent
from gateway.api.convert_pods import selector_from_proto
from gateway.clusters.registry import ClusterRuntime, Registry
from gateway.placement import selectors
from gateway.policy import tenants as tp

UPDATABLE = frozenset(clusters_pb2.Cluster.DESCRIPTOR.fields_by_name) - {"name"}


def _info(runtime: ClusterRuntime) -> clusters_pb2.ClusterInfo:
    health = runtime.health
    return cv.snapshot_to_proto(runtime.snapshot(), health_message=health.message, last_probe=health.last_probe)


def _required_name(name: str, field: str = "name") -> str:
    if not name:
        raise errors.InvalidArgument(
            f"{field} is required", [errors.FieldViolation(field=field, description="required")]
        )
    return name


class ClusterService(clusters_pb2_grpc.ClusterServiceServicer):
    def __init__(self, registry: Registry, access: AccessControl) -> None:
        self._registry = registry
        self._access = access

    def _admin(self, action: str) -> None:
        tp.require(tp.authorize_admin(current_caller().tenant, action))

    async def _audit(self, action: str, cluster: str, message: str = "") -> None:
        await self._access.audit(
            current_caller(), AuditEvent(action=action, outcome="done", cluster=cluster, message=message)
        )

    def _visible(self, name: str) -> ClusterRuntime:
        runtime = self._registry.get(name)
        if not tp.visible_clusters(current_caller().tenant, [runtime.spec]):
            raise errors.NotFound(f"no cluster named {name!r} is registered")
        return runtime

    async def RegisterCluster(
        self, request: clusters_pb2.RegisterClusterRequest, context: Any
    ) -> clusters_pb2.RegisterClusterResponse:
        self._admin("registering a cluster")
        runtime = await self._registry.register(cv.spec_from_proto(request.cluster))
        await self._audit("cluster.register", runtime.spec.name)
        return clusters_pb2.RegisterClusterResponse(cluster=_info(runtime))

    async def UpdateCluster(
        self, request: clusters_pb2.UpdateClusterRequest, context: Any
    ) -> clusters_pb2.UpdateClusterResponse:
        self._admin("updating a cluster")
        name = _required_name(request.cluster.name, "cluster.name")
        paths = set(request.update_mask.paths) or UPDATABLE
        unknown = paths - UPDATABLE
        if unknown:
            raise errors.InvalidArgument(
                f"update_mask names fields that cannot be updated: {sorted(unknown)}",
                [
                    errors.FieldViolation(field="update_mask", description=f"unknown or immutable: {p}")
                    for p in sorted(unknown)
                ],
            )
        merged = cv.spec_to_proto(self._registry.get(name).spec)
        mask = field_mask_pb2.FieldMask(paths=sorted(paths))
        mask.MergeMessage(request.cluster, merged, replace_message_field=True, replace_repeated_field=True)
        runtime = await self._registry.update(cv.spec_from_proto(merged))
        await self._audit("cluster.update", name, f"fields: {', '.join(sorted(paths))}")
        return clusters_pb2.UpdateClusterResponse(cluster=_info(runtime))

    async def DeregisterCluster(
        self, request: clusters_pb2.DeregisterClusterRequest, context: Any
    ) -> clusters_pb2.DeregisterClusterResponse:
        self._admin("deregistering a cluster")
        await self._registry.deregister(_required_name(request.name), force=request.force)
        await self._audit("cluster.deregister", request.name, "forced" if request.force else "")
        return clusters_pb2.DeregisterClusterResponse()

    async def GetCluster(
        self, request: clusters_pb2.GetClusterRequest, context: Any
    ) -> clusters_pb2.GetClusterResponse:
        return clusters_pb2.GetClusterResponse(cluster=_info(self._visible(_required_name(request.name))))

    async def ListClusters(
        self, request: clusters_pb2.ListClustersRequest, context: Any
    ) -> clusters_pb2.ListClustersResponse:
        wanted = selector_from_proto(request.selector, "selector")
        tenant = current_caller().tenant
        runtimes = [r for r in map(self._registry.get, self._registry.names()) if tp.visible_clusters(tenant, [r.spec])]
        return clusters_pb2.ListClustersResponse(
            clusters=[_info(r) for r in runtimes if selectors.matches(wanted, r.spec.labels)]
        )

    async def CordonCluster(
        self, request: clusters_pb2.CordonClusterRequest, context: Any
    ) -> clusters_pb2.CordonClusterResponse:
        self._admin("cordoning a cluster")
        runtime = await self._registry.set_cordon(_required_name(request.name), True, request.reason or "cordoned")
        await self._audit("cluster.cordon", request.name, request.reason)
        return clusters_pb2.CordonClusterResponse(cluster=_info(runtime))

    async def UncordonCluster(
        self, request: clusters_pb2.UncordonClusterRequest, context: Any
    ) -> clusters_pb2.UncordonClusterResponse:
        self._admin("uncordoning a cluster")
        runtime = await self._registry.set_cordon(_required_name(request.name), False)
        await self._audit("cluster.uncordon", request.name)
        return clusters_pb2.UncordonClusterResponse(cluster=_info(runtime))
