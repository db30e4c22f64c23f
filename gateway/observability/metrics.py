"""Every Prometheus metric of the gateway, defined once, and the HTTP endpoint that exposes them.

Counters and the histogram are recorded where things happen (one call each in the interceptor, the
runner, the token cache). Gauges of live state (cluster health and capacity, pods by phase) are not
pushed on every change: `track_live` reads them from the gateway at scrape time, on the event loop
that owns that state, so a scrape never sees a structure mid-update and quiet clusters cost nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import logging
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9464"
SCRAPE_SAMPLE_TIMEOUT = 5.0

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

REQUESTS = Counter(
    "podgate_requests",
    "gRPC requests handled, by full method name and final status code.",
    ["rpc", "code"],
    registry=REGISTRY,
)
PLACEMENTS = Counter(
    "podgate_placement_decisions",
    "Placement outcomes by cluster: placed (first choice), failover, create_failed, create_unknown, "
    "no_fit (cluster empty: no cluster could take the pod within its placement timeout).",
    ["cluster", "reason"],
    registry=REGISTRY,
)
PODS_FINISHED = Counter(
    "podgate_pods_finished",
    "Requests finished, by cluster (empty when never placed) and final phase.",
    ["cluster", "phase"],
    registry=REGISTRY,
)
DISPATCH_LATENCY = Histogram(
    "podgate_dispatch_latency_seconds",
    "From submission to the pod running, by cluster.",
    ["cluster"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
CREDENTIAL_REFRESHES = Counter(
    "podgate_credential_refreshes",
    "Cluster token fetches by outcome (ok, failure).",
    ["cluster", "outcome"],
    registry=REGISTRY,
)
LOG_BYTES = Counter(
    "podgate_log_bytes",
    "Bytes of pod log lines read from clusters and streamed to callers, by cluster.",
    ["cluster"],
    registry=REGISTRY,
)


# --- recording helpers: one call at each site, the labelling rules here --------------------


def record_placement(cluster: str, created: str, *, first_choice: bool) -> None:
    """`created` is the create outcome: yes, no or unknown."""
    if created == "yes":
        reason = "placed" if first_choice else "failover"
    else:
        reason = f"create_{'failed' if created == 'no' else created}"
    PLACEMENTS.labels(cluster=cluster, reason=reason).inc()


def record_phase(cluster: str, phase: str, submitted_at: datetime | None) -> None:
    """A pod reached `phase`; the first time it runs, its dispatch latency is observed."""
    if phase == "Running" and submitted_at is not None:
        elapsed = (datetime.now(UTC) - submitted_at.astimezone(UTC)).total_seconds()
        DISPATCH_LATENCY.labels(cluster=cluster).observe(max(0.0, elapsed))


def record_log_line(cluster: str, text: str) -> None:
    LOG_BYTES.labels(cluster=cluster).inc(len(text.encode("utf-8", "replace")))


# --- live state, sampled at scrape time --------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClusterSample:
    """One cluster as a scrape reports it; resources are keyed cpu (cores), memory (bytes), gpu (count)."""

    name: str
    health: str
    cordoned: bool = False
    gateway_pods: int = 0
    allocatable: Mapping[str, float] = field(default_factory=dict)
    free: Mapping[str, float] = field(default_factory=dict)
    gpus_free_by_type: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PodSample:
    cluster: str
    phase: str


@dataclass(frozen=True, kw_only=True)
class LiveSources:
    clusters: Callable[[], Iterable[ClusterSample]]
    pods: Callable[[], Iterable[PodSample]]


T = TypeVar("T")


def call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], T], timeout: float) -> T:
    """Runs fn on loop's thread and returns its result (directly when already on that loop)."""
    try:
        if asyncio.get_running_loop() is loop:
            return fn()
    except RuntimeError:
        pass
    if loop.is_closed():
        raise RuntimeError("the gateway's event loop is closed")
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if done.set_running_or_notify_cancel():
            try:
                done.set_result(fn())
            except Exception as e:
                done.set_exception(e)

    loop.call_soon_threadsafe(run)
    try:
        return done.result(timeout)
    finally:
        done.cancel()


def _cluster_families(samples: list[ClusterSample]) -> Iterator[Metric]:
    healthy = GaugeMetricFamily("podgate_cluster_healthy", "1 when the cluster answers its probes.", labels=["cluster"])
    health = GaugeMetricFamily(
        "podgate_cluster_health",
        "The cluster's current health state (1 for the state it is in).",
        labels=["cluster", "state"],
    )
    cordoned = GaugeMetricFamily(
        "podgate_cluster_cordoned", "1 when no new pods are placed on the cluster.", labels=["cluster"]
    )
    pods = GaugeMetricFamily(
        "podgate_cluster_gateway_pods", "Unfinished gateway pods on the cluster.", labels=["cluster"]
    )
    allocatable = GaugeMetricFamily(
        "podgate_cluster_allocatable", "Allocatable resources of schedulable nodes.", labels=["cluster", "resource"]
    )
    free = GaugeMetricFamily(
        "podgate_cluster_free", "Allocatable minus requested, summed over nodes.", labels=["cluster", "resource"]
    )
    gpus = GaugeMetricFamily("podgate_cluster_gpus_free", "Free GPUs by GPU product.", labels=["cluster", "gpu_type"])
    for s in samples:
        healthy.add_metric([s.name], 1.0 if s.health == "healthy" else 0.0)
        health.add_metric([s.name, s.health], 1.0)
        cordoned.add_metric([s.name], 1.0 if s.cordoned else 0.0)
        pods.add_metric([s.name], float(s.gateway_pods))
        for resource, value in sorted(s.allocatable.items()):
            allocatable.add_metric([s.name, resource], float(value))
        for resource, value in sorted(s.free.items()):
            free.add_metric([s.name, resource], float(value))
        for gpu_type, count in sorted(s.gpus_free_by_type.items()):
            gpus.add_metric([s.name, gpu_type], float(count))
    yield from (healthy, health, cordoned, pods, allocatable, free, gpus)


def _pod_family(samples: list[PodSample]) -> Metric:
    family = GaugeMetricFamily(
        "podgate_pods", "Unfinished requests by cluster (empty while queued) and phase.", labels=["cluster", "phase"]
    )
    for (cluster, phase), count in sorted(Tally((p.cluster, p.phase) for p in samples).items()):
        family.add_metric([cluster, phase], float(count))
    return family


class LiveCollector(Collector):
    """Reads live state from the gateway's loop at each scrape; a stalled loop drops these series, not the scrape."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sources: LiveSources, timeout: float) -> None:
        self._loop = loop
        self._sources = sources
        self._timeout = timeout

    def _sample(self) -> tuple[list[ClusterSample], list[PodSample]]:
        return list(self._sources.clusters()), list(self._sources.pods())

    def collect(self) -> Iterable[Metric]:
        try:
            clusters, pods = call_on_loop(self._loop, self._sample, self._timeout)
        except (TimeoutError, RuntimeError) as e:
            log.warning("metrics: live state not sampled: %s", e or "the event loop did not answer in time")
            return []
        return [*_cluster_families(clusters), _pod_family(pods)]

    def describe(self) -> Iterable[Metric]:
        return []  # sampled at scrape time: nothing to reserve (several gateways may run in one test process)


def track_live(
    loop: asyncio.AbstractEventLoop, sources: LiveSources, *, timeout: float = SCRAPE_SAMPLE_TIMEOUT
) -> Callable[[], None]:
    """Exposes live gauges from sources, read on loop at each scrape; returns the function that stops it."""
    collector = LiveCollector(loop, sources, timeout)
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)


# --- the exposition endpoint --------------------------------------------------------------


def parse_listen(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` to (host, port); port 0 picks a free one."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"metrics address {address!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    host = host.removeprefix("[").removesuffix("]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics address {address!r}: port must be a number from 0 to 65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"metrics address {address!r}: host must be an IP address or localhost") from None
    return host, int(port)


@dataclass
class MetricsServer:
    """The /metrics endpoint on its own thread (prometheus_client's WSGI server)."""

    httpd: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    def close(self) -> None:
        """Blocks up to the server's poll interval (0.5 s): call it in a thread from async code."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(address: str = DEFAULT_LISTEN) -> MetricsServer:
    """Starts exposing REGISTRY over HTTP at address; raises OSError when it cannot bind."""
    host, port = parse_listen(address)
    httpd, thread = start_http_server(port, addr=host, registry=REGISTRY)
    server = MetricsServer(httpd=httpd, thread=thread)
    if not (host == "localhost" or ipaddress.ip_address(host).is_loopback):
        log.info("metrics exposed on %s:%d beyond loopback: restrict access with a NetworkPolicy", host, server.port)
    return server


@contextlib.contextmanager
def serving(address: str = DEFAULT_LISTEN) -> Iterator[MetricsServer]:
    server = serve(address)
    try:
        yield server
    finally:
        server.close()
