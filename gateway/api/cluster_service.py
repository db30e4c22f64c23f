"""ClusterService: registration, cordon and status of clusters, delegated to the Registry."""

from __future__ import annotations

from typing import Any

from google.protobuf import field_mask_pb2

from gateway import errors
from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc
from gateway.api import convert_clusters as cv
from gateway.api.convert_pods import selector_from_proto
from gateway.clusters.registry import ClusterRuntime, Registry
from gateway.placement import selectors

UPDATABLE = frozenset(clusters_pb2.Cluster.DESCRIPTOR.fields_by_name) - {"name"}


def _info(runtime: ClusterRuntime) -> clusters_pb2.ClusterInfo:
    return cv.snapshot_to_proto(runtime.snapshot(), health_message=runtime.health.message)


def _required_name(name: str, field: str = "name") -> str:
    if not name:
        raise errors.InvalidArgument(
            f"{field} is required", [errors.FieldViolation(field=field, description="required")]
        )
    return name


class ClusterService(clusters_pb2_grpc.ClusterServiceServicer):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def RegisterCluster(
        self, request: clusters_pb2.RegisterClusterRequest, context: Any
    ) -> clusters_pb2.RegisterClusterResponse:
        runtime = await self._registry.register(cv.spec_from_proto(request.cluster))
        return clusters_pb2.RegisterClusterResponse(cluster=_info(runtime))

    async def UpdateCluster(
        self, request: clusters_pb2.UpdateClusterRequest, context: Any
    ) -> clusters_pb2.UpdateClusterResponse:
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
        return clusters_pb2.UpdateClusterResponse(cluster=_info(runtime))

    async def DeregisterCluster(
        self, request: clusters_pb2.DeregisterClusterRequest, context: Any
    ) -> clusters_pb2.DeregisterClusterResponse:
        await self._registry.deregister(_required_name(request.name), force=request.force)
        return clusters_pb2.DeregisterClusterResponse()

    async def GetCluster(
        self, request: clusters_pb2.GetClusterRequest, context: Any
    ) -> clusters_pb2.GetClusterResponse:
        return clusters_pb2.GetClusterResponse(cluster=_info(self._registry.get(_required_name(request.name))))

    async def ListClusters(
        self, request: clusters_pb2.ListClustersRequest, context: Any
    ) -> clusters_pb2.ListClustersResponse:
        wanted = selector_from_proto(request.selector, "selector")
        runtimes = [self._registry.get(n) for n in self._registry.names()]
        return clusters_pb2.ListClustersResponse(
            clusters=[_info(r) for r in runtimes if selectors.matches(wanted, r.spec.labels)]
        )

    async def CordonCluster(
        self, request: clusters_pb2.CordonClusterRequest, context: Any
    ) -> clusters_pb2.CordonClusterResponse:
        runtime = await self._registry.set_cordon(_required_name(request.name), True, request.reason or "cordoned")
        return clusters_pb2.CordonClusterResponse(cluster=_info(runtime))

    async def UncordonCluster(
        self, request: clusters_pb2.UncordonClusterRequest, context: Any
    ) -> clusters_pb2.UncordonClusterResponse:
        runtime = await self._registry.set_cordon(_required_name(request.name), False)
        return clusters_pb2.UncordonClusterResponse(cluster=_info(runtime))
