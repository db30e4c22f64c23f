"""Virtual pods for the dispatch benchmarks: their requests, direct creation, and a watch that observes them.

A virtual pod runs no process: the simulator's virtual runtime reads its duration, log lines and
termination message (the AUTO-mode XCom) from annotations (gateway/sim/runtime/virtual.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2

from bench._stack import CLUSTERS
from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.client import LogSelection, PodSpecRequest, XcomMode
from gateway.clusters import files
from gateway.clusters import kubeapi as k
from gateway.credentials.factory import build_provider

BENCH_LABEL = "bench.podgate.io/id"
ANNOTATION = "sim.podgate.io/"
XCOM = '{"bench": true}'
NAMESPACE = "default"
FINISHED = (
    dispatch_pb2.POD_PHASE_SUCCEEDED,
    dispatch_pb2.POD_PHASE_FAILED,
    dispatch_pb2.POD_PHASE_CANCELLED,
)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def manifest(bench_id: str, *, duration: float, log_lines: int = 1, name: str = "bench") -> dict[str, Any]:
    lines = "\n".join(expected_lines(log_lines))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {BENCH_LABEL: bench_id},
            "annotations": {
                f"{ANNOTATION}duration": f"{duration:g}",
                f"{ANNOTATION}log-lines": lines,
                f"{ANNOTATION}termination-message": XCOM,
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c", "echo virtual"],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


def pod_request(
    bench_id: str, *, duration: float, regions: tuple[str, ...] = (), log_lines: int = 1, follow_logs: bool = True
) -> dispatch_pb2.PodRequest:
    selection = dispatch_pb2.LOG_SELECTION_MAIN if follow_logs else dispatch_pb2.LOG_SELECTION_NONE
    return dispatch_pb2.PodRequest(
        request_id=bench_id,
        pod_json=json.dumps(manifest(bench_id, duration=duration, log_lines=log_lines)),
        placement=common_pb2.Placement(regions=list(regions)),
        xcom=dispatch_pb2.XcomOptions(mode=dispatch_pb2.XCOM_MODE_AUTO),
        logs=dispatch_pb2.LogOptions(selection=selection),
        lifecycle=dispatch_pb2.LifecycleOptions(startup_timeout=duration_pb2.Duration(seconds=600)),
    )


def spec_request(bench_id: str, *, duration: float, log_lines: int = 1) -> PodSpecRequest:
    """What `pod_request` asks, as GatewayClient's request (logs of the main container followed, AUTO XCom)."""
    return PodSpecRequest(
        request_id=bench_id,
        pod=manifest(bench_id, duration=duration, log_lines=log_lines),
        xcom=XcomMode.AUTO,
        logs=LogSelection.MAIN,
        startup_timeout=600,
    )


def expected_lines(log_lines: int) -> list[str]:
    return [f"line {i}" for i in range(log_lines)]


@dataclass
class RunOutcome:
    """One RunPod stream as the caller saw it; times are time.perf_counter() readings."""

    phase: int = dispatch_pb2.POD_PHASE_UNSPECIFIED
    log_lines: int = 0
    first_log_at: float | None = None
    result_at: float | None = None
    xcom: str = ""

    @property
    def ok(self) -> bool:
        return self.phase == dispatch_pb2.POD_PHASE_SUCCEEDED and self.xcom == XCOM


async def run_pod(stub: dispatch_pb2_grpc.DispatchServiceStub, request: dispatch_pb2.PodRequest) -> RunOutcome:
    outcome = RunOutcome()
    async for response in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=3600):
        kind = response.event.WhichOneof("event")
        if kind == "log":
            outcome.log_lines += 1
            if outcome.first_log_at is None:
                outcome.first_log_at = time.perf_counter()
        elif kind == "result":
            outcome.result_at = time.perf_counter()
            outcome.phase = response.event.result.phase
            outcome.xcom = response.event.result.xcom_json
    return outcome


@contextlib.asynccontextmanager
async def channels(address: str, count: int) -> AsyncIterator[list[dispatch_pb2_grpc.DispatchServiceStub]]:
    """`count` independent gRPC connections (each its own HTTP/2 connection), one stub each."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    opened = [grpc.aio.insecure_channel(address, options=options) for _ in range(count)]
    try:
        yield [dispatch_pb2_grpc.DispatchServiceStub(c) for c in opened]
    finally:
        await asyncio.gather(*(c.close() for c in opened))


async def count_phases(stub: dispatch_pb2_grpc.DispatchServiceStub, phases: tuple[dispatch_pb2.PodPhase, ...]) -> int:
    """How many pod records are in `phases`, by ListPods pages."""
    total, token = 0, ""
    while True:
        page = await stub.ListPods(dispatch_pb2.ListPodsRequest(page_size=1000, page_token=token, phases=list(phases)))
        total += len(page.pods)
        token = page.next_page_token
        if not token:
            return total


def cluster_client(cluster: str, kubeconfig_dir: Path, config: Path = CLUSTERS) -> k.ClusterClient:
    """The gateway's own client for one cluster of the file, built the way the gateway builds it."""
    spec = next(s for s in files.load_files([config]).clusters if s.name == cluster)
    return k.ClusterClient(build_provider(spec.name, spec.credentials, kubeconfig_dir=kubeconfig_dir), name=spec.name)


@dataclass
class Sighting:
    added: float | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    names: set[str] = field(default_factory=set)  # more than one: a second pod for one request


class Observer:
    """One watch on a cluster's pods, recording when each bench pod first appears and when it starts."""

    def __init__(self, client: k.ClusterClient) -> None:
        self._client = client
        self._seen: dict[str, Sighting] = {}
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    def sighting(self, bench_id: str) -> Sighting:
        return self._seen.setdefault(bench_id, Sighting())

    async def __aenter__(self) -> Observer:
        self._task = asyncio.create_task(self._follow())
        await self._synced.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self) -> None:
        target = k.WatchTarget(resource=k.PODS, namespace=NAMESPACE, label_selector=BENCH_LABEL)
        async for event in k.watch_forever(self._client, target):
            now = time.perf_counter()
            self._synced.set()
            if event.type in (k.EventType.ADDED, k.EventType.MODIFIED):
                self._see(event.object, now)

    def _see(self, pod: dict[str, Any], now: float) -> None:
        sighting = self.sighting(pod["metadata"]["labels"][BENCH_LABEL])
        sighting.names.add(pod["metadata"]["name"])
        if sighting.added is None:
            sighting.added = now
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if any({"running", "terminated"} & set(s.get("state") or {}) for s in statuses):
            sighting.started.set()
