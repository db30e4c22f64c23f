"""A gateway that runs out of file descriptors sheds load with RESOURCE_EXHAUSTED and never blames a
cluster: a real `podgate serve` under a low RLIMIT_NOFILE (soft and hard), far more followed pods than
it has descriptors for."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc, common_pb2, dispatch_pb2, dispatch_pb2_grpc
from tests.conftest import BIN, ROOT, clean_env
from tests.e2e.conftest import virtual_cluster_file, virtual_world

LIMIT = 160  # soft and hard: the gateway cannot raise it
PODS = 140  # each followed pod holds a log connection: more than the limit allows (and under 3 x 50 running)
# A log connection per followed pod is HTTP/1.1's cost; over HTTP/2, 140 logs share 3 connections and would fit.
ENV = {**clean_env(), "PODGATE_CLUSTERS_API_PROTOCOL": "http/1.1"}


@contextmanager
def serve_limited(tmp_path: Path, clusters: Path, soft: int, hard: int) -> Iterator[tuple[str, list[str]]]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    proc = subprocess.Popen(
        [str(BIN / "podgate"), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path),
         "--clusters", str(clusters), "--metrics-listen", "off"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=limit,
    )  # fmt: skip
    assert proc.stdout is not None
    printed: list[str] = []
    try:
        while not (match := re.search(r"serving on (127\.0\.0\.1:\d+)", printed[-1] if printed else "")):
            line = proc.stdout.readline()
            assert line, "".join(printed)
            printed.append(line)
        yield match.group(1), printed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        printed.append(out)


def pod(i: int, seconds: float) -> dispatch_pb2.PodRequest:
    lines = "\n".join(f"line {n}" for n in range(5))
    manifest = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"fd-{i}", "annotations": {
            "sim.podgate.io/duration": str(seconds), "sim.podgate.io/log-lines": lines}},
        "spec": {"containers": [{"name": "base", "image": "busybox", "command": ["true"]}]},
    }  # fmt: skip
    return dispatch_pb2.PodRequest(request_id=f"fd-{i}", pod_json=json.dumps(manifest), placement=common_pb2.Placement())


async def follow(stub: dispatch_pb2_grpc.DispatchServiceStub, request: dispatch_pb2.PodRequest) -> str:
    """How the RunPod ended: the result's phase, or the status code."""
    try:
        async for response in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request), timeout=60):
            if response.event.WhichOneof("event") == "result":
                return dispatch_pb2.PodPhase.Name(response.event.result.phase)
        return "no result"
    except grpc.aio.AioRpcError as e:
        return e.code().name if e.code() != grpc.StatusCode.FAILED_PRECONDITION else f"{e.code().name}: {e.details()}"


async def test_out_of_descriptors_answers_resource_exhausted_and_no_cluster_is_blamed(tmp_path: Path) -> None:
    clusters = virtual_cluster_file(tmp_path)
    async with virtual_world(tmp_path):
        served = serve_limited(tmp_path, clusters, LIMIT, LIMIT)
        address, printed = await asyncio.to_thread(served.__enter__)
        try:
            assert any(f"soft limit {LIMIT} (the hard limit)" in line for line in printed), printed
            async with grpc.aio.insecure_channel(address) as channel:
                stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
                health: Counter[str] = Counter()

                async def watch_health() -> None:
                    cluster_stub = clusters_pb2_grpc.ClusterServiceStub(channel)
                    while True:
                        try:
                            got = await cluster_stub.ListClusters(clusters_pb2.ListClustersRequest(), timeout=10)
                            health.update(clusters_pb2.ClusterHealth.Name(c.status.health) for c in got.clusters)
                        except grpc.aio.AioRpcError as e:
                            health[e.code().name] += 1
                        await asyncio.sleep(0.5)

                watcher = asyncio.create_task(watch_health())
                # 15 s pods: all are still running when the last is admitted, however the admissions are paced
                outcomes = Counter(await asyncio.gather(*(follow(stub, pod(i, 15)) for i in range(PODS))))
                watcher.cancel()
                for attempt in range(60):  # with the streams gone (and idle connections closed) it takes work again
                    after = await follow(stub, pod(PODS + attempt, 0.5))
                    if after != "RESOURCE_EXHAUSTED":
                        break
                    await asyncio.sleep(1)
        finally:
            await asyncio.to_thread(served.__exit__, None, None, None)
    log = "".join(printed)
    assert set(outcomes) <= {"POD_PHASE_SUCCEEDED", "RESOURCE_EXHAUSTED"}, (outcomes, log[-4000:])
    assert outcomes["RESOURCE_EXHAUSTED"] > 0 and outcomes["POD_PHASE_SUCCEEDED"] > 0, outcomes
    assert after == "POD_PHASE_SUCCEEDED"
    assert set(health) == {"CLUSTER_HEALTH_HEALTHY"}, health
    assert "Traceback" not in log, log[-3000:]


async def test_the_soft_limit_is_raised_to_the_hard_limit_at_start(tmp_path: Path) -> None:
    clusters = virtual_cluster_file(tmp_path)
    async with virtual_world(tmp_path):
        served = serve_limited(tmp_path, clusters, 200, 700)
        _, printed = await asyncio.to_thread(served.__enter__)
        await asyncio.to_thread(served.__exit__, None, None, None)
    assert any("soft limit raised from 200 to 700 (the hard limit)" in line for line in printed), printed
