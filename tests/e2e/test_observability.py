"""Metrics and structured logs of a real gateway: a pod runs on the simulated clusters, /metrics is scraped
over HTTP and parsed with prometheus_client's parser, and the runner's JSON log lines carry the context."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, serve_metrics, start_gateway
from gateway.observability import logging as obs
from gateway.observability import metrics
from gateway.settings import MetricsSettings
from gateway.sim.cluster import SimWorld
from tests.conftest import BIN, ROOT, clean_env
from tests.e2e.conftest import eventually, gateway_settings, pod_request, result, run_to_end

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
Scrape = Callable[[], Awaitable[Samples]]


@pytest.fixture
async def scrape(gateway: Gateway) -> AsyncIterator[Scrape]:
    server = serve_metrics(MetricsSettings(listen="127.0.0.1:0"))
    assert server is not None

    async def scraped() -> Samples:
        def get() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
                return str(answer.read().decode())

        text = await asyncio.to_thread(get)  # from another thread, as Prometheus would, while the loop runs
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    yield scraped
    await asyncio.to_thread(server.close)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_pod_run_moves_the_metrics(stub: dispatch_pb2_grpc.DispatchServiceStub, scrape: Scrape) -> None:
    before = await scrape()
    cluster = "local-eu-gpu"
    assert value(before, "podgate_cluster_healthy", cluster=cluster) == 1
    assert value(before, "podgate_cluster_allocatable", cluster=cluster, resource="gpu") >= 1
    free_gpus = value(before, "podgate_cluster_free", cluster=cluster, resource="gpu")

    request = pod_request("import time; print('x' * 99); time.sleep(1.5)", regions=("eu-west-1",), gpus=1)
    submitted = await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=request))
    assert submitted.created

    async def running() -> Samples | None:
        now = await scrape()
        return now if value(now, "podgate_pods", cluster=cluster, phase="Running") >= 1 else None

    during = await eventually(running)
    assert value(during, "podgate_cluster_free", cluster=cluster, resource="gpu") == free_gpus - 1
    assert value(during, "podgate_cluster_gateway_pods", cluster=cluster) >= 1

    events = [r.event async for r in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request.request_id))]
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    watch = "podgate.v1.DispatchService/WatchPod"

    async def settled() -> Samples | None:  # the server counts an RPC just after the caller has its status
        now = await scrape()
        return (
            now
            if value(now, "podgate_requests_total", rpc=watch, code="OK")
            > value(before, "podgate_requests_total", rpc=watch, code="OK")
            else None
        )

    after = await eventually(settled)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("podgate_placement_decisions_total", cluster=cluster, reason="placed") == 1
    assert delta("podgate_pods_finished_total", cluster=cluster, phase="Succeeded") == 1
    assert delta("podgate_dispatch_latency_seconds_count", cluster=cluster) == 1
    assert delta("podgate_log_bytes_total", cluster=cluster) == 99
    assert delta("podgate_requests_total", rpc="podgate.v1.DispatchService/SubmitPod", code="OK") == 1
    assert delta("podgate_requests_total", rpc="podgate.v1.DispatchService/WatchPod", code="OK") == 1
    assert value(after, "podgate_pods", cluster=cluster, phase="Running") == 0


async def test_no_fit_and_invalid_requests_are_counted(
    stub: dispatch_pb2_grpc.DispatchServiceStub, gateway: Gateway
) -> None:
    rpc = "podgate.v1.DispatchService/RunPod"
    invalid = metrics.REGISTRY.get_sample_value("podgate_requests_total", {"rpc": rpc, "code": "INVALID_ARGUMENT"})
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await run_to_end(stub, pod_request("print(1)", regions=("mars-north-1",)))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    expected = (invalid or 0) + 1
    labels = {"rpc": rpc, "code": "INVALID_ARGUMENT"}
    assert await eventually(lambda: metrics.REGISTRY.get_sample_value("podgate_requests_total", labels) == expected)


async def test_failover_is_counted_and_logged_with_request_cluster_and_pod(world: SimWorld, tmp_path: Path) -> None:
    gateway = await start_gateway(gateway_settings(tmp_path, {"clusters": {"probe_interval_seconds": 60}}))  # the create meets the outage
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(obs.formatter("json"))
    runner_log = logging.getLogger("gateway.pods")  # the pod path: creation, following, finishing
    runner_log.addHandler(handler)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            request = pod_request("print('hi')", regions=("eu-west-1", "eu-central-1"))
            explained = await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=request))
            first = explained.decision.cluster
            second = ({"local-eu-gpu", "local-eu-cpu"} - {first}).pop()
            counts = {
                (cluster, reason): placements(cluster, reason)
                for cluster in (first, second)
                for reason in ("placed", "failover", "create_failed", "create_unknown")
            }
            # Every call refused with 429 (an outage is now seen by the cluster's watches before the create
            # meets it, and the pod is placed elsewhere at once, with no failover to count)
            world.clusters[first].set_faults(error_rate=1.0, error_code=429, retry_after=0)
            events = await run_to_end(stub, request)
    finally:
        runner_log.removeHandler(handler)
        await gateway.stop()
    assert result(events).phase == dispatch_pb2.POD_PHASE_SUCCEEDED
    refused = sum(placements(first, r) - counts[first, r] for r in ("create_failed", "create_unknown"))
    assert refused >= 1
    assert placements(second, "failover") == counts[second, "failover"] + 1
    assert placements(second, "placed") == counts[second, "placed"]
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    failed = [
        e for e in entries if e["message"].startswith("creating pod") and e.get("request_id") == request.request_id
    ]
    assert failed, entries
    assert all(e["cluster"] == first and e["pod"] and e["pod"] in e["message"] for e in failed)


def placements(cluster: str, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "podgate_placement_decisions_total", {"cluster": cluster, "reason": reason}
    )
    return value or 0.0


def test_podgate_serve_serves_metrics_and_logs_json_lines(tmp_path: Path) -> None:
    """What a Deployment runs: every stderr line is one JSON object, /metrics answers, SIGTERM stops both."""
    proc = subprocess.Popen(
        [str(BIN / "podgate"), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path),
         "--metrics-listen", "127.0.0.1:0", "--log-format", "json"],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        while not (found := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", printed[-1] if printed else "")):
            line = proc.stdout.readline()
            assert line, "".join(printed)
            printed.append(line)
        with urllib.request.urlopen(f"http://127.0.0.1:{found.group(1)}/metrics", timeout=10) as answer:
            families = {f.name for f in text_string_to_metric_families(answer.read().decode())}
        assert {"podgate_requests", "podgate_cluster_healthy", "podgate_pods"} <= families
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    entries = [json.loads(line) for line in err.splitlines()]  # fails on any line that is not JSON
    assert any(e["logger"] == "gateway.api.server" for e in entries)
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
