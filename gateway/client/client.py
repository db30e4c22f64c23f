"""GatewayClient: the async (grpc.aio) client every Python caller uses. One call path owns metadata, deadlines,
retries and error translation; streams resume from their last cursor when the gateway is briefly unavailable."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from gateway._proto.podgate.v1 import (
    clusters_pb2,
    clusters_pb2_grpc,
    credentials_pb2,
    credentials_pb2_grpc,
    dispatch_pb2,
    dispatch_pb2_grpc,
)
from gateway.client import convert, convert_clusters
from gateway.client import types as t
from gateway.client.channel import ChannelSpec
from gateway.client.errors import GatewayError, Unavailable, translate
from gateway.client.request import PodSpecRequest, SelectorLike, SelectorSpec

log = logging.getLogger(__name__)

R = TypeVar("R")
DEFAULT_DEADLINE = 30.0


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Rides out UNAVAILABLE (a gateway restarting, a failover) for `budget` seconds without progress, with
    full-jitter exponential backoff: wait n is uniform in [0, min(max_delay, initial_delay * multiplier**(n-1))],
    so clients cut off together do not come back together. `attempts`, when set, also caps the tries (a
    one-shot command that should fail fast). `first_contact`, when set, is the budget while the gateway has
    never answered this client: one not reached at all (refused, a name that does not resolve, a failed TLS
    handshake) is not restarting, and a person at a terminal should hear so at once; once it has answered,
    losing it is a restart or a failover, ridden out for the whole budget. The Airflow operator uses
    DEFAULT_RETRY (a worker starting during a rolling restart waits for it); the CLI sets first_contact."""

    budget: float = 90.0  # a restart or failover of 60 s, plus the longest wait and a call, fits inside
    initial_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0
    attempts: int | None = None
    first_contact: float | None = None

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number `attempt` (1-based)."""
        return float(min(self.max_delay, self.initial_delay * self.multiplier ** min(attempt - 1, 64)))

    def delay(self, attempt: int, elapsed: float, jitter: float, *, answered: bool = True) -> float | None:
        """Seconds to wait before retry `attempt`, `elapsed` seconds after the last progress, `jitter` drawn
        uniformly from [0, 1); None once the budget (or the attempts) are spent. Never waits past the budget.
        `answered`: whether the gateway has ever answered this client (see `first_contact`)."""
        budget = self.budget if answered or self.first_contact is None else min(self.budget, self.first_contact)
        if elapsed >= budget or (self.attempts is not None and attempt > self.attempts):
            return None
        return min(jitter * self.ceiling(attempt), budget - elapsed)


DEFAULT_RETRY = RetryPolicy()


class GatewayClient:
    """Create inside a running event loop, preferably as `async with GatewayClient(spec) as client:`."""

    def __init__(
        self, spec: ChannelSpec, *, retry: RetryPolicy = DEFAULT_RETRY, deadline: float = DEFAULT_DEADLINE
    ) -> None:
        self.spec = spec
        self.retry = retry
        self.deadline = deadline
        self._channel = spec.aio_channel()
        self._metadata = spec.metadata()
        self._answered = False  # the gateway has answered a call or sent a message (RetryPolicy.first_contact)
        self._dispatch = dispatch_pb2_grpc.DispatchServiceStub(self._channel)
        self._clusters = clusters_pb2_grpc.ClusterServiceStub(self._channel)
        self._credentials = credentials_pb2_grpc.CredentialsServiceStub(self._channel)

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    # --- the one call path ----------------------------------------------------------------------

    def _backoff(self, attempt: int, since: float) -> float | None:
        elapsed = asyncio.get_running_loop().time() - since
        return self.retry.delay(attempt, elapsed, random.random(), answered=self._answered)

    async def _call(self, rpc: str, method: Callable[..., Awaitable[R]], request: Any, *, retry: bool = True) -> R:
        attempt, since = 0, asyncio.get_running_loop().time()
        while True:
            try:
                response = await method(request, metadata=self._metadata, timeout=self.deadline)
                self._answered = True
                return response
            except grpc.aio.AioRpcError as e:
                attempt += 1
                unavailable = e.code() == grpc.StatusCode.UNAVAILABLE
                self._answered = self._answered or not unavailable  # any other status came from the gateway
                delay = self._backoff(attempt, since) if retry and unavailable else None
                if delay is None:
                    raise translate(e, rpc) from e
                log.warning("%s: gateway unavailable (%s); retry %d in %.1fs", rpc, e.details(), attempt, delay)
                await asyncio.sleep(delay)

    async def _follow(
        self, rpc: str, request_id: str, cursor: str, open_first: Callable[[], Any] | None, *, reattach: bool
    ) -> AsyncGenerator[t.PodEvent, None]:
        """Yields events until the Result; on UNAVAILABLE reopens as WatchPod from the last cursor, so nothing is
        lost or repeated. `open_first` (RunPod) is used while no event has arrived: it is idempotent.
        `reattach`: the reopened stream holds the pod's disconnect policy (this client ran the pod)."""
        attempt, since = 0, asyncio.get_running_loop().time()
        while True:
            if open_first is not None and not cursor:
                call, name = open_first(), rpc
            else:
                watch = dispatch_pb2.WatchPodRequest(request_id=request_id, cursor=cursor, reattach=reattach)
                call, name = self._dispatch.WatchPod(watch, metadata=self._metadata), "WatchPod"
            try:
                async for response in call:
                    self._answered = True
                    cursor = response.event.cursor or cursor
                    event = convert.event_of(response.event)
                    if event is not None:
                        yield event
                    if isinstance(event, t.Result):
                        return
                    # progress counts from when the caller asks for the next event: its own time with this one
                    # is not the gateway's outage (counted from its arrival, a caller that took longer than the
                    # budget over one event gave up at the next break without trying to reconnect once)
                    attempt, since = 0, asyncio.get_running_loop().time()
                cause: BaseException = Unavailable("stream ended before the pod's result", rpc=name)
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise translate(e, name) from e
                cause = e
            finally:
                call.cancel()
            attempt += 1
            delay = self._backoff(attempt, since)
            if delay is None:
                error = translate(cause, name) if isinstance(cause, grpc.RpcError) else cause
                if not self._answered and self.retry.first_contact is not None:  # never reached: the error says it
                    raise error from cause
                raise Unavailable(f"gave up after {attempt - 1} reconnects: {error}", rpc=name) from cause
            log.warning(
                "%s %s: stream interrupted (%s); resuming from cursor %r in %.1fs, attempt %d",
                name, request_id, cause, cursor, delay, attempt,
            )  # fmt: skip
            await asyncio.sleep(delay)

    # --- dispatch -----------------------------------------------------------------------------

    async def submit_pod(self, request: PodSpecRequest) -> t.Submitted:
        """Places and creates the pod, returning at once; the same request_id never creates a second pod."""
        proto = dispatch_pb2.SubmitPodRequest(pod=convert.pod_request_to_proto(request))
        response = await self._call("SubmitPod", self._dispatch.SubmitPod, proto)
        return t.Submitted(pod=convert.pod_of(response.pod), created=response.created)

    def run_pod(self, request: PodSpecRequest) -> AsyncGenerator[t.PodEvent, None]:
        """Submits (idempotently) and follows the pod: Placed, Phase, Notice, Log ... and a final Result."""
        proto = dispatch_pb2.RunPodRequest(pod=convert.pod_request_to_proto(request))

        def open_run() -> Any:
            return self._dispatch.RunPod(proto, metadata=self._metadata)

        return self._follow("RunPod", request.request_id, "", open_run, reattach=True)

    def watch_pod(
        self, request_id: str, cursor: str = "", *, reattach: bool = False
    ) -> AsyncGenerator[t.PodEvent, None]:
        """Follows an existing pod right after `cursor` (from the start when empty). `reattach`: take the place
        of the client that ran it (RunPod), so leaving before the result applies its disconnect policy; a
        plain watcher (the default) never changes the pod's fate."""
        return self._follow("WatchPod", request_id, cursor, None, reattach=reattach)

    async def get_pod(self, request_id: str) -> t.PodInfo:
        response = await self._call("GetPod", self._dispatch.GetPod, dispatch_pb2.GetPodRequest(request_id=request_id))
        return convert.pod_of(response.pod)

    async def cancel_pod(self, request_id: str, reason: str = "") -> t.PodInfo:
        proto = dispatch_pb2.CancelPodRequest(request_id=request_id, reason=reason)
        response = await self._call("CancelPod", self._dispatch.CancelPod, proto)
        return convert.pod_of(response.pod)

    async def list_pods(
        self,
        *,
        page_size: int = 100,
        page_token: str = "",
        cluster: str = "",
        phases: Sequence[t.PodPhase] = (),
        dag_id: str = "",
    ) -> t.PodPage:
        proto = dispatch_pb2.ListPodsRequest(
            page_size=page_size,
            page_token=page_token,
            cluster=cluster,
            phases=[convert.PHASES_TO_PROTO[p] for p in phases],
            dag_id=dag_id,
        )
        response = await self._call("ListPods", self._dispatch.ListPods, proto)
        return t.PodPage(pods=tuple(convert.pod_of(p) for p in response.pods), next_page_token=response.next_page_token)

    async def explain_placement(self, request: PodSpecRequest) -> t.PlacementDecision:
        proto = dispatch_pb2.ExplainPlacementRequest(pod=convert.pod_request_to_proto(request))
        response = await self._call("ExplainPlacement", self._dispatch.ExplainPlacement, proto)
        return convert.decision_of(response.decision)

    # --- clusters -----------------------------------------------------------------------------

    async def register_cluster(self, cluster: t.Cluster) -> t.ClusterInfo:
        proto = clusters_pb2.RegisterClusterRequest(cluster=convert_clusters.cluster_to_proto(cluster))
        response = await self._call("RegisterCluster", self._clusters.RegisterCluster, proto, retry=False)
        return convert_clusters.cluster_info_of(response.cluster)

    async def update_cluster(self, cluster: t.Cluster, fields: Sequence[str] = ()) -> t.ClusterInfo:
        """Changes the named fields of the cluster (proto field names); every field when `fields` is empty."""
        proto = clusters_pb2.UpdateClusterRequest(
            cluster=convert_clusters.cluster_to_proto(cluster), update_mask=field_mask_pb2.FieldMask(paths=fields)
        )
        response = await self._call("UpdateCluster", self._clusters.UpdateCluster, proto, retry=False)
        return convert_clusters.cluster_info_of(response.cluster)

    async def deregister_cluster(self, name: str, *, force: bool = False) -> None:
        proto = clusters_pb2.DeregisterClusterRequest(name=name, force=force)
        await self._call("DeregisterCluster", self._clusters.DeregisterCluster, proto, retry=False)

    async def get_cluster(self, name: str) -> t.ClusterInfo:
        proto = clusters_pb2.GetClusterRequest(name=name)
        response = await self._call("GetCluster", self._clusters.GetCluster, proto)
        return convert_clusters.cluster_info_of(response.cluster)

    async def list_clusters(self, selector: SelectorLike = None) -> tuple[t.ClusterInfo, ...]:
        proto = clusters_pb2.ListClustersRequest(selector=convert.selector_to_proto(SelectorSpec.of(selector)))
        response = await self._call("ListClusters", self._clusters.ListClusters, proto)
        return tuple(convert_clusters.cluster_info_of(c) for c in response.clusters)

    async def cordon_cluster(self, name: str, reason: str = "") -> t.ClusterInfo:
        proto = clusters_pb2.CordonClusterRequest(name=name, reason=reason)
        response = await self._call("CordonCluster", self._clusters.CordonCluster, proto)
        return convert_clusters.cluster_info_of(response.cluster)

    async def uncordon_cluster(self, name: str) -> t.ClusterInfo:
        proto = clusters_pb2.UncordonClusterRequest(name=name)
        response = await self._call("UncordonCluster", self._clusters.UncordonCluster, proto)
        return convert_clusters.cluster_info_of(response.cluster)

    # --- credentials --------------------------------------------------------------------------

    async def issue_kubeconfig(
        self,
        cluster: str,
        namespace: str,
        *,
        ttl: float | timedelta = 3600,
        access: t.KubeconfigAccess | str = t.KubeconfigAccess.VIEW,
    ) -> t.IssuedKubeconfig:
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
        proto = credentials_pb2.IssueKubeconfigRequest(
            cluster=cluster,
            namespace=namespace,
            ttl=convert.duration(seconds),
            access=convert_clusters.ACCESS_TO_PROTO[t.KubeconfigAccess(access)],
        )
        response = await self._call("IssueKubeconfig", self._credentials.IssueKubeconfig, proto, retry=False)
        return convert_clusters.kubeconfig_of(response)

    async def revoke_kubeconfig(self, credential_id: str) -> None:
        proto = credentials_pb2.RevokeKubeconfigRequest(credential_id=credential_id)
        await self._call("RevokeKubeconfig", self._credentials.RevokeKubeconfig, proto)


async def run_to_result(
    client: GatewayClient, request: PodSpecRequest, on_event: Callable[[t.PodEvent], None] | None = None
) -> t.PodResult:
    """Runs the pod to its end, handing every event to `on_event`; returns the final result."""
    async with aclosing(client.run_pod(request)) as events:
        async for event in events:
            if on_event is not None:
                on_event(event)
            if isinstance(event, t.Result):
                return event.result
    raise GatewayError("the pod's stream ended without a result", rpc="RunPod")
