"""DispatchService: converts at the edge, applies the caller's tenant (access.py), delegates to the Dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway import domain, errors
from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.api import convert_pods as cv
from gateway.api.access import AccessControl, Caller, current_caller
from gateway.api.audit import AuditEvent
from gateway.api.status import MAX_MESSAGE, clip, code_for
from gateway.clusters.registry import Registry
from gateway.observability.descriptors import Gauge
from gateway.pods.dispatcher import Dispatcher
from gateway.policy import tenants as tp
from gateway.policy.admission import explainable
from gateway.policy.limits import InputLimits

MAX_PAGE = 1000
# A manifest over this size is decoded and checked in a worker thread: a megabyte of Pod takes up to
# ~0.3 s of pure Python to walk, which would stall every stream and health check on the event loop.
OFFLOAD_BYTES = 64 * 1024


async def _pod_request(pod: dispatch_pb2.PodRequest, limits: InputLimits) -> domain.PodRequest:
    if len(pod.pod_json) > OFFLOAD_BYTES:
        return await asyncio.to_thread(cv.pod_request_from_proto, pod, limits=limits)
    return cv.pod_request_from_proto(pod, limits=limits)


class DispatchService(dispatch_pb2_grpc.DispatchServiceServicer):
    def __init__(
        self, dispatcher: Dispatcher, registry: Registry, access: AccessControl, *, descriptors: Gauge | None = None
    ) -> None:
        self._dispatcher = dispatcher
        self._registry = registry
        self._access = access
        self._descriptors = descriptors or Gauge()
        self._admitting = 0  # submissions past the shedding check whose runner is not live yet

    def _shed(self) -> None:
        """New pods and streams are refused near the descriptor limit, so the ones running keep going."""
        live = self._dispatcher.live_count() + self._admitting
        short = self._descriptors.short(live, http2=self._registry.logs_share_connections())
        if short is not None:
            held, limit = short
            raise errors.ResourceExhausted(
                f"the gateway holds (or its pods will hold) {held} of its {limit} file descriptors; "
                "retry shortly (or on another replica)",
                retry_after_seconds=2.0,
            )

    async def SubmitPod(self, request: dispatch_pb2.SubmitPodRequest, context: Any) -> dispatch_pb2.SubmitPodResponse:
        record, created = await self._admitted(request.pod)
        return dispatch_pb2.SubmitPodResponse(pod=cv.record_to_proto(record), created=created)

    async def RunPod(
        self, request: dispatch_pb2.RunPodRequest, context: Any
    ) -> AsyncIterator[dispatch_pb2.RunPodResponse]:
        record, _ = await self._admitted(request.pod)
        async for event in self._follow(record, 0, holder=True):
            yield dispatch_pb2.RunPodResponse(event=event)

    async def _admitted(self, pod: Any) -> tuple[domain.PodRecord, bool]:
        """Shed, then submit; a burst of submissions arriving together counts itself before any runner is live."""
        self._shed()
        self._admitting += 1
        try:
            return await self._submit(pod)
        finally:
            self._admitting -= 1

    async def _submit(self, pod: Any) -> tuple[domain.PodRecord, bool]:
        caller = current_caller()
        request = await _pod_request(pod, self._access.limits)

        live: list[domain.PodRecord] = []
        accepted: dict[str, Any] = {}

        def admit(request: domain.PodRequest) -> domain.PodRequest:
            clusters = [self._registry.get(n).spec for n in self._registry.names()]
            return self._access.admit(caller, request, clusters=clusters, live=live)

        def audit(request: domain.PodRequest) -> dict[str, Any]:
            """Stored in the write that creates the record (one write, not two)."""
            accepted.update(self._access.audit_record(caller, _submit_entry(caller, request, "accepted")))
            return accepted

        try:
            async with self._access.admission(caller.tenant):
                quota = None
                if self._access.counts_usage(caller.tenant):
                    live = await self._dispatcher.unfinished_of(caller.tenant.name)
                    quota = self._access.quota_in_store(caller.tenant, request, live)
                record, created = await self._dispatcher.submit(
                    request, admit=admit, admission=quota, look_first=self._access.rate_limited(caller.tenant),
                    audit=audit, text_chars=len(pod.pod_json),
                )  # fmt: skip
        except errors.GatewayError as e:
            message = clip(str(e), MAX_MESSAGE)  # the audit keeps what the caller was told, never its megabyte
            await self._access.audit(
                caller, _submit_entry(caller, request, "refused", code=code_for(e).name, message=message)
            )
            raise
        _require_access(caller, record, "resubmit")
        if created:
            self._access.audited(accepted)  # stored with the record: to the sink now
        return record, created

    async def WatchPod(
        self, request: dispatch_pb2.WatchPodRequest, context: Any
    ) -> AsyncIterator[dispatch_pb2.WatchPodResponse]:
        after = cv.parse_cursor(request.cursor)
        self._shed()
        record = await self._owned(cv.check_request_id(request.request_id), "watch")
        if after > record.last_seq:
            last = f"{cv.cursor_of(record.last_seq)!r}" if record.last_seq else "none yet (pass no cursor)"
            raise errors.OutOfRange(
                f"cursor {request.cursor!r} is past the end of request {record.request.request_id!r}'s stream; "
                f"its last cursor is {last}"
            )
        async for event in self._follow(record, after, holder=request.reattach):
            yield dispatch_pb2.WatchPodResponse(event=event)

    async def _follow(
        self, record: domain.PodRecord, after: int, *, holder: bool
    ) -> AsyncIterator[dispatch_pb2.PodEvent]:
        """`holder`: the client that ran the pod, or one reattached in its place; its leaving before the
        result applies the disconnect policy. A plain watcher's leaving changes nothing. `record`: as just
        read or stored (the dispatcher does not read it again)."""
        request = record.request
        events = self._dispatcher.watch(request.request_id, after, record=record)
        if not holder:
            async for event in events:
                yield cv.stream_event_to_proto(event)
            return
        async with self._dispatcher.attached(request) as attachment:
            async for event in events:
                yield cv.stream_event_to_proto(event)
            attachment.completed()

    async def _owned(self, request_id: str, action: str) -> domain.PodRecord:
        record = await self._dispatcher.get(request_id)
        _require_access(current_caller(), record, action)
        return record

    async def GetPod(self, request: dispatch_pb2.GetPodRequest, context: Any) -> dispatch_pb2.GetPodResponse:
        record = await self._owned(cv.check_request_id(request.request_id), "get")
        return dispatch_pb2.GetPodResponse(pod=cv.record_to_proto(self._dispatcher.explained(record)))

    async def CancelPod(self, request: dispatch_pb2.CancelPodRequest, context: Any) -> dispatch_pb2.CancelPodResponse:
        caller = current_caller()
        reason = cv.check_cancel_reason(request.reason)
        record = await self._owned(cv.check_request_id(request.request_id), "cancel")
        record = await self._dispatcher.cancel(record.request.request_id, reason)
        await self._access.audit(
            caller,
            AuditEvent(
                action="pod.cancel", outcome=record.phase.value, request_id=record.request.request_id,
                cluster=record.cluster, pod=record.name, message=request.reason,
            ),
        )  # fmt: skip
        return dispatch_pb2.CancelPodResponse(pod=cv.record_to_proto(record))

    async def ListPods(self, request: dispatch_pb2.ListPodsRequest, context: Any) -> dispatch_pb2.ListPodsResponse:
        if not 0 <= request.page_size <= MAX_PAGE:
            raise errors.InvalidArgument(
                f"page_size must be between 1 and {MAX_PAGE}",
                [errors.FieldViolation(field="page_size", description=f"between 1 and {MAX_PAGE}")],
            )
        phases = cv.phases_from_proto(list(request.phases))
        records, token = await self._dispatcher.list(
            cluster=request.cluster,
            phases=phases,
            dag_id=request.dag_id,
            tenant=tp.list_scope(current_caller().tenant),
            limit=request.page_size or 100,
            page_token=request.page_token,
        )
        return dispatch_pb2.ListPodsResponse(pods=[cv.record_to_proto(r) for r in records], next_page_token=token)

    async def ExplainPlacement(
        self, request: dispatch_pb2.ExplainPlacementRequest, context: Any
    ) -> dispatch_pb2.ExplainPlacementResponse:
        caller = current_caller()
        specs = [self._registry.get(n).spec for n in self._registry.names()]
        visible = {c.name for c in tp.visible_clusters(caller.tenant, specs)}
        decision = self._dispatcher.explain(
            await _pod_request(request.pod, self._access.limits),
            admit=lambda r: explainable(caller.tenant, r, specs),
            visible=visible,
            text_chars=len(request.pod.pod_json),
        )
        return dispatch_pb2.ExplainPlacementResponse(decision=cv.decision_to_proto(decision))


def _submit_entry(
    caller: Caller, request: domain.PodRequest, outcome: str, *, code: str = "", message: str = ""
) -> AuditEvent:
    """Made with the caller's tenant and identity, as the audit would set them (no copy there)."""
    return AuditEvent(
        action="pod.submit", outcome=outcome, tenant=caller.tenant.name, identity=caller.identity,
        request_id=request.request_id, namespace=tp.request_namespace(request), code=code, message=message,
    )  # fmt: skip


def _require_access(caller: Caller, record: domain.PodRecord, action: str) -> None:
    tp.require(tp.authorize_pod_access(caller.tenant, record.request.tenant, action))
