"""Placement time against 1,000 registered clusters of 10 nodes each (pure logic, no I/O).

Placement remembers each cluster's outcome per request shape while the cluster is unchanged
(gateway/placement/memo.py), so three situations are timed for the unconstrained case: the same shape
again with nothing changed, the same shape with one cluster's capacity changed before each placement
(what a dispatch loop sees: the pod just placed changed its cluster), and a new shape every time (nothing
remembered: node summaries only).

Run: .venv/bin/python bench/placement.py [--clusters N] [--nodes N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from gateway.domain import (
    GPU_PRODUCT_LABEL,
    ClusterHealth,
    ClusterSnapshot,
    ClusterSpec,
    CredentialsRef,
    NodeState,
    PlacementSpec,
    PodRequest,
    Preference,
)
from gateway.placement import place
from gateway.placement.selectors import parse_selector

REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")
GPUS = ("NVIDIA-A100-SXM4-40GB", "NVIDIA-H100-80GB-HBM3", "Tesla-T4")


def synthetic_clusters(count: int, nodes_per_cluster: int) -> list[ClusterSnapshot]:
    clusters = []
    for i in range(count):
        nodes = tuple(
            NodeState(
                name=f"c{i}-n{j}",
                labels={GPU_PRODUCT_LABEL: GPUS[(i + j) % 3]} if j % 2 else {},
                cpu_millis=32000,
                memory_bytes=128 * 2**30,
                gpus=8 if j % 2 else 0,
                cpu_millis_used=(i * 7 + j * 13) % 32000,
                memory_bytes_used=((i + j) % 100) * 2**30,
                gpus_used=(i + j) % 9 if j % 2 else 0,
            )
            for j in range(nodes_per_cluster)
        )
        spec = ClusterSpec(
            name=f"cluster-{i:04}",
            provider="sim",
            credentials=CredentialsRef(source="sim"),
            region=REGIONS[i % len(REGIONS)],
            labels={"tier": "prod" if i % 2 else "dev", "accelerator": "nvidia", "team": f"t{i % 10}"},
            allowed_namespaces=frozenset({"default", "airflow"}),
            max_concurrent_pods=100,
        )
        clusters.append(ClusterSnapshot(spec=spec, health=ClusterHealth.HEALTHY, nodes=nodes, running_pods=i % 50))
    return clusters


def gpu_request(cpu: str = "2", **placement: object) -> PodRequest:
    container = {
        "name": "main",
        "image": "python:3.12",
        "resources": {"requests": {"cpu": cpu, "memory": "8Gi"}, "limits": {"nvidia.com/gpu": 1}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [container], "nodeSelector": {GPU_PRODUCT_LABEL: GPUS[1]}},
    }
    return PodRequest(request_id="bench", pod=pod, placement=PlacementSpec(**placement))  # type: ignore[arg-type]


def timed(
    request: PodRequest,
    clusters: list[ClusterSnapshot],
    runs: int,
    before_each: Callable[[int], PodRequest | None] = lambda run: None,
) -> tuple[float, float, float, str]:
    """Median and p95 wall time and median CPU time (steadier on a shared machine), in ms.

    `before_each(run)` runs untimed before each placement; it may change `clusters` or return the
    request to place instead."""
    wall, cpu = [], []
    decision = place(request, clusters)
    for run in range(runs):
        request = before_each(run) or request
        start, start_cpu = time.perf_counter(), time.process_time()
        decision = place(request, clusters)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    wall.sort()
    p95 = wall[min(len(wall) - 1, int(len(wall) * 0.95))]
    return statistics.median(wall) * 1000, p95 * 1000, statistics.median(cpu) * 1000, decision.cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    clusters = synthetic_clusters(args.clusters, args.nodes)
    preferences = (Preference(weight=50, selector=parse_selector("tier=prod", field="bench")),)

    def one_cluster_changed(run: int) -> None:
        i = (run * 37) % len(clusters)
        first = clusters[i].nodes[0]
        nodes = (replace(first, cpu_millis_used=(first.cpu_millis_used + 1000) % 32000), *clusters[i].nodes[1:])
        clusters[i] = replace(clusters[i], nodes=nodes)

    def new_shape(run: int) -> PodRequest:
        return gpu_request(cpu=f"{2000 + run + 1}m", preferences=preferences)

    print(f"load average {os.getloadavg()[0]:.1f}")
    cases = {
        "GPU pod, no cluster constraint, nothing changed": gpu_request(preferences=preferences),
        "GPU pod, one region (data residency)": gpu_request(regions=frozenset({"eu-west-1"})),
        "GPU pod, selector tier=prod,team in (t1,t3)": gpu_request(
            selector=parse_selector("tier=prod,team in (t1,t3)", field="bench")
        ),
    }
    print(f"placement against {args.clusters} clusters x {args.nodes} nodes, {args.runs} runs each")
    for label, request in cases.items():
        report(label, timed(request, clusters, args.runs))
    unconstrained = gpu_request(preferences=preferences)
    report("GPU pod, no cluster constraint, one cluster changed before each", timed(unconstrained, clusters, args.runs, one_cluster_changed))
    report("GPU pod, no cluster constraint, a new request shape each time", timed(unconstrained, clusters, args.runs, new_shape))


def report(label: str, figures: tuple[float, float, float, str]) -> None:
    median, p95, cpu, chosen = figures
    print(f"  {label}: median {median:.2f} ms, p95 {p95:.2f} ms, cpu {cpu:.2f} ms (chose {chosen or 'none'})")


if __name__ == "__main__":
    main()
