"""gRPC servicers. Each method converts at the edge and delegates; no business logic lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway import errors
from gateway._proto.podgate.v1 import (
    clusters_pb2_grpc,
    credentials_pb2_grpc,
    dispatch_pb2,
    dispatch_pb2_grpc,
)


def _missing(rpc: str, issue: str) -> errors.Unimplemented:
    return errors.Unimplemented(f"{rpc} is not implemented yet ({issue})")


async def _missing_stream(rpc: str, issue: str) -> AsyncIterator[Any]:
    nothing: tuple[Any, ...] = ()
    for item in nothing:
        yield item
    raise _missing(rpc, issue)


class DispatchServicer(dispatch_pb2_grpc.DispatchServiceServicer):
    async def SubmitPod(self, request: Any, context: Any) -> Any:
        raise _missing("SubmitPod", "dispatch core")

    def RunPod(self, request: Any, context: Any) -> AsyncIterator[dispatch_pb2.RunPodResponse]:
        return _missing_stream("RunPod", "dispatch core")

    def WatchPod(self, request: Any, context: Any) -> AsyncIterator[dispatch_pb2.WatchPodResponse]:
        return _missing_stream("WatchPod", "dispatch core")

    async def GetPod(self, request: Any, context: Any) -> Any:
        raise _missing("GetPod", "dispatch core")

    async def CancelPod(self, request: Any, context: Any) -> Any:
        raise _missing("CancelPod", "dispatch core")

    async def ListPods(self, request: Any, context: Any) -> Any:
        raise _missing("ListPods", "dispatch core")

    async def ExplainPlacement(self, request: Any, context: Any) -> Any:
        raise _missing("ExplainPlacement", "dispatch core")


class ClusterServicer(clusters_pb2_grpc.ClusterServiceServicer):
    async def RegisterCluster(self, request: Any, context: Any) -> Any:
        raise _missing("RegisterCluster", "cluster registry")

    async def UpdateCluster(self, request: Any, context: Any) -> Any:
        raise _missing("UpdateCluster", "cluster registry")

    async def DeregisterCluster(self, request: Any, context: Any) -> Any:
        raise _missing("DeregisterCluster", "cluster registry")

    async def GetCluster(self, request: Any, context: Any) -> Any:
        raise _missing("GetCluster", "cluster registry")

    async def ListClusters(self, request: Any, context: Any) -> Any:
        raise _missing("ListClusters", "cluster registry")

    async def CordonCluster(self, request: Any, context: Any) -> Any:
        raise _missing("CordonCluster", "cluster registry")

    async def UncordonCluster(self, request: Any, context: Any) -> Any:
        raise _missing("UncordonCluster", "cluster registry")


class CredentialsServicer(credentials_pb2_grpc.CredentialsServiceServicer):
    async def IssueKubeconfig(self, request: Any, context: Any) -> Any:
        raise _missing("IssueKubeconfig", "credentials")

    async def RevokeKubeconfig(self, request: Any, context: Any) -> Any:
        raise _missing("RevokeKubeconfig", "credentials")
