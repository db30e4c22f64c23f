"""DispatchService: converts at the edge and delegates to the Dispatcher. No business logic here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway import domain, errors
from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.api import convert_pods as cv
from gateway.pods.dispatcher import Dispatcher

MAX_PAGE = 1000


class DispatchService(dispatch_pb2_grpc.DispatchServiceServicer):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def SubmitPod(self, request: dispatch_pb2.SubmitPodRequest, context: Any) -> dispatch_pb2.SubmitPodResponse:
        record, created = await self._dispatcher.submit(cv.pod_request_from_proto(request.pod))
        return dispatch_pb2.SubmitPodResponse(pod=cv.record_to_proto(record), created=created)

    async def RunPod(
        self, request: dispatch_pb2.RunPodRequest, context: Any
    ) -> AsyncIterator[dispatch_pb2.RunPodResponse]:
        record, _ = await self._dispatcher.submit(cv.pod_request_from_proto(request.pod))
        async for event in self._follow(record.request, 0):
            yield dispatch_pb2.RunPodResponse(event=event)

    async def WatchPod(
        self, request: dispatch_pb2.WatchPodRequest, context: Any
    ) -> AsyncIterator[dispatch_pb2.WatchPodResponse]:
        after = cv.parse_cursor(request.cursor)
        record = await self._dispatcher.get(cv.check_request_id(request.request_id))
        async for event in self._follow(record.request, after):
            yield dispatch_pb2.WatchPodResponse(event=event)

    async def _follow(self, request: domain.PodRequest, after: int) -> AsyncIterator[dispatch_pb2.PodEvent]:
        async with self._dispatcher.attached(request):
            async for event in self._dispatcher.watch(request.request_id, after):
                yield cv.stream_event_to_proto(event)

    async def GetPod(self, request: dispatch_pb2.GetPodRequest, context: Any) -> dispatch_pb2.GetPodResponse:
        record = await self._dispatcher.get(cv.check_request_id(request.request_id))
        return dispatch_pb2.GetPodResponse(pod=cv.record_to_proto(record))

    async def CancelPod(self, request: dispatch_pb2.CancelPodRequest, context: Any) -> dispatch_pb2.CancelPodResponse:
        record = await self._dispatcher.cancel(cv.check_request_id(request.request_id), request.reason)
        return dispatch_pb2.CancelPodResponse(pod=cv.record_to_proto(record))

    async def ListPods(self, request: dispatch_pb2.ListPodsRequest, context: Any) -> dispatch_pb2.ListPodsResponse:
        if not 0 <= request.page_size <= MAX_PAGE:
            raise errors.InvalidArgument(
                f"page_size must be between 1 and {MAX_PAGE}",
                [errors.FieldViolation(field="page_size", description=f"between 1 and {MAX_PAGE}")],
            )
        phases = [cv.PHASES_FROM_PROTO[p] for p in request.phases if p in cv.PHASES_FROM_PROTO]
        records, token = await self._dispatcher.list(
            cluster=request.cluster,
            phases=phases,
            dag_id=request.dag_id,
            limit=request.page_size or 100,
            page_token=request.page_token,
        )
        return dispatch_pb2.ListPodsResponse(pods=[cv.record_to_proto(r) for r in records], next_page_token=token)

    async def ExplainPlacement(
        self, request: dispatch_pb2.ExplainPlacementRequest, context: Any
    ) -> dispatch_pb2.ExplainPlacementResponse:
        decision = self._dispatcher.explain(cv.pod_request_from_proto(request.pod))
        return dispatch_pb2.ExplainPlacementResponse(decision=cv.decision_to_proto(decision))
