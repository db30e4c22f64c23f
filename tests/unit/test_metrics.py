"""Metrics over real HTTP: scraped from 127.0.0.1 and parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability import metrics
from gateway.observability.metrics import ClusterSample, LiveSources, PodSample

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def server() -> Iterator[metrics.MetricsServer]:
    with metrics.serving("127.0.0.1:0") as running:
        yield running


def scrape(server: metrics.MetricsServer) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def ascrape(server: metrics.MetricsServer) -> Samples:
    """Scrapes from another thread, as Prometheus would, while this loop keeps running."""
    return await asyncio.to_thread(scrape, server)


def test_counters_change_as_recorded(server: metrics.MetricsServer) -> None:
    before = scrape(server)
    metrics.REQUESTS.labels(rpc="podgate.v1.DispatchService/RunPod", code="OK").inc()
    metrics.REQUESTS.labels(rpc="podgate.v1.DispatchService/RunPod", code="OK").inc()
    metrics.CREDENTIAL_REFRESHES.labels(cluster="eu", outcome="failure").inc()
    metrics.record_log_line("eu", "héllo")  # 6 bytes in UTF-8
    metrics.PODS_FINISHED.labels(cluster="eu", phase="Succeeded").inc()
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("podgate_requests_total", rpc="podgate.v1.DispatchService/RunPod", code="OK") == 2
    assert delta("podgate_credential_refreshes_total", cluster="eu", outcome="failure") == 1
    assert delta("podgate_credential_refreshes_total", cluster="eu", outcome="ok") == 0
    assert delta("podgate_log_bytes_total", cluster="eu") == 6
    assert delta("podgate_pods_finished_total", cluster="eu", phase="Succeeded") == 1
    assert value(after, "process_cpu_seconds_total") > 0  # the standard process collector is exposed too


@pytest.mark.parametrize(
    ("created", "first_choice", "reason"),
    [
        ("yes", True, "placed"),
        ("yes", False, "failover"),
        ("no", True, "create_failed"),
        ("unknown", False, "create_unknown"),
    ],
)
def test_placement_reasons(server: metrics.MetricsServer, created: str, first_choice: bool, reason: str) -> None:
    before = value(scrape(server), "podgate_placement_decisions_total", cluster="c1", reason=reason)
    metrics.record_placement("c1", created, first_choice=first_choice)
    assert value(scrape(server), "podgate_placement_decisions_total", cluster="c1", reason=reason) == before + 1


def test_dispatch_latency_is_observed_once_running(server: metrics.MetricsServer) -> None:
    before = scrape(server)
    submitted = datetime.now(UTC) - timedelta(seconds=3)
    metrics.record_phase("lat", "Pending", submitted)
    metrics.record_phase("lat", "Running", submitted)
    metrics.record_phase("lat", "Running", None)  # resumed record without a submission time: not observed
    after = scrape(server)
    count = "podgate_dispatch_latency_seconds_count"
    assert value(after, count, cluster="lat") - value(before, count, cluster="lat") == 1
    total = value(after, "podgate_dispatch_latency_seconds_sum", cluster="lat")
    assert 3 <= total - value(before, "podgate_dispatch_latency_seconds_sum", cluster="lat") < 60
    bucket = "podgate_dispatch_latency_seconds_bucket"
    assert value(after, bucket, cluster="lat", le="2.0") == value(before, bucket, cluster="lat", le="2.0")
    assert value(after, bucket, cluster="lat", le="5.0") == value(before, bucket, cluster="lat", le="5.0") + 1


async def test_live_state_is_read_from_the_loop_at_scrape_time(server: metrics.MetricsServer) -> None:
    clusters = [
        ClusterSample(
            name="eu-gpu",
            health="healthy",
            gateway_pods=2,
            allocatable={"cpu": 16, "memory": 64e9, "gpu": 4},
            free={"cpu": 12, "memory": 60e9, "gpu": 1},
            gpus_free_by_type={"nvidia-a100": 1},
        ),
        ClusterSample(name="us-cpu", health="unreachable", cordoned=True),
    ]
    pods = [PodSample(cluster="eu-gpu", phase="Running")] * 2 + [PodSample(cluster="", phase="Queued")]
    threads: set[int] = set()

    def pods_now() -> list[PodSample]:
        threads.add(threading.get_ident())
        return pods

    stop = metrics.track_live(asyncio.get_running_loop(), LiveSources(clusters=lambda: clusters, pods=pods_now))
    try:
        seen = await ascrape(server)
        pods.append(PodSample(cluster="us-cpu", phase="Pending"))
        clusters[1] = ClusterSample(name="us-cpu", health="healthy")
        later = await ascrape(server)
    finally:
        stop()
    assert threads == {threading.get_ident()}  # sampled on the loop's thread, not the HTTP server's
    assert value(seen, "podgate_cluster_healthy", cluster="eu-gpu") == 1
    assert value(seen, "podgate_cluster_healthy", cluster="us-cpu") == 0
    assert value(seen, "podgate_cluster_health", cluster="us-cpu", state="unreachable") == 1
    assert value(seen, "podgate_cluster_cordoned", cluster="us-cpu") == 1
    assert value(seen, "podgate_cluster_free", cluster="eu-gpu", resource="gpu") == 1
    assert value(seen, "podgate_cluster_allocatable", cluster="eu-gpu", resource="memory") == 64e9
    assert value(seen, "podgate_cluster_gpus_free", cluster="eu-gpu", gpu_type="nvidia-a100") == 1
    assert value(seen, "podgate_cluster_gateway_pods", cluster="eu-gpu") == 2
    assert value(seen, "podgate_pods", cluster="eu-gpu", phase="Running") == 2
    assert value(seen, "podgate_pods", cluster="", phase="Queued") == 1
    assert ("podgate_pods", frozenset({("cluster", "us-cpu"), ("phase", "Pending")})) not in seen
    assert value(later, "podgate_pods", cluster="us-cpu", phase="Pending") == 1
    assert value(later, "podgate_cluster_healthy", cluster="us-cpu") == 1
    assert ("podgate_cluster_health", frozenset({("cluster", "us-cpu"), ("state", "unreachable")})) not in later
    assert not any(name.startswith("podgate_cluster") for name, _ in scrape(server))  # stopped: gone


def test_a_stalled_loop_drops_live_series_not_the_scrape(server: metrics.MetricsServer) -> None:
    never_run = asyncio.new_event_loop()
    sources = LiveSources(clusters=lambda: [ClusterSample(name="x", health="healthy")], pods=list)
    stop = metrics.track_live(never_run, sources, timeout=0.2)
    try:
        seen = scrape(server)
    finally:
        stop()
        never_run.close()
    assert not any(name.startswith("podgate_cluster") for name, _ in seen)
    assert any(name.startswith("podgate_requests") or name.startswith("process_") for name, _ in seen)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9100", ("::1", 9100)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen(address: str, expected: tuple[str, int]) -> None:
    assert metrics.parse_listen(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("9464", "is not HOST:PORT"),
        (":9464", "is not HOST:PORT"),
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:70000", "port must be a number"),
        ("metrics.example:9464", "host must be an IP address or localhost"),
    ],
)
def test_parse_listen_rejects(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.parse_listen(address)


def test_a_taken_port_is_an_error() -> None:
    with metrics.serving("127.0.0.1:0") as first, pytest.raises(OSError):
        metrics.serve(f"127.0.0.1:{first.port}")
