"""Placement time against 1,000 registered clusters of 10 nodes each (pure logic, no I/O).

Each constraint (none, a region, a cluster selector; GPU types) is timed with a request shape seen before
and with a new shape every time (nothing remembered from earlier placements), plus the same shape with
one cluster's capacity changed before each placement (what a dispatch loop sees: the pod just placed
changed its cluster). A decision's table of every cluster's verdict is built when first read
(gateway/placement/fast.py); the last lines time placing and reading it, as GetPod or ExplainPlacement
does, and what the runner stores per dispatched pod since docs/decisions/0029: the decision and the
chosen cluster's row (`carried_out`), no table.

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
from gateway.placement import engine, place
from gateway.placement.selectors import parse_selector
from gateway.pods.explanations import carried_out

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


def gpu_request(cpu: str = "2", gpu: str = GPUS[1], **placement: object) -> PodRequest:
    """A pod of 1 GPU of type `gpu` (by nodeSelector); `gpu=""`: a pod asking cpu and memory only."""
    resources: dict[str, object] = {"requests": {"cpu": cpu, "memory": "8Gi"}}
    spec: dict[str, object] = {"containers": [{"name": "main", "image": "python:3.12", "resources": resources}]}
    if gpu:
        resources["limits"] = {"nvidia.com/gpu": 1}
        spec["nodeSelector"] = {GPU_PRODUCT_LABEL: gpu}
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": spec}
    return PodRequest(request_id="bench", pod=pod, placement=PlacementSpec(**placement))  # type: ignore[arg-type]


def timed(
    request: PodRequest,
    clusters: list[ClusterSnapshot],
    runs: int,
    before_each: Callable[[int], PodRequest | None] = lambda run: None,
    table: bool = False,
    stored: bool = False,
) -> tuple[float, float, float, str]:
    """Median wall time, median and p99 CPU time (steadier on a shared machine), in ms, and the choice.

    `before_each(run)` runs untimed before each placement; it may change `clusters` or return the
    request to place instead. `table`: read every cluster's verdict too (what storing the placement for
    GetPod, or ExplainPlacement, does), inside the timing. `stored`: place and make the decision as the
    runner stores it (`carried_out`: the chosen row only)."""
    wall, cpu = [], []
    decision = place(request, clusters)
    for run in range(runs):
        request = before_each(run) or request
        start, start_cpu = time.perf_counter(), time.process_time()
        if stored:
            decided = engine.placement(request, clusters)
            decision = carried_out(decided, decided.decision.cluster) if decided.decision.cluster else decided.decision
        else:
            decision = place(request, clusters)
        if table:
            decision.verdicts  # noqa: B018
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    cpu.sort()
    p99 = cpu[min(len(cpu) - 1, int(len(cpu) * 0.99))]
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000, p99 * 1000, decision.cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    clusters = synthetic_clusters(args.clusters, args.nodes)
    preferences = (Preference(weight=50, selector=parse_selector("tier=prod", field="bench")),)

    def one_cluster_changed(run: int) -> None:
        i = (run * 37) % len(clusters)
        first = clusters[i].nodes[0]
        nodes = (replace(first, cpu_millis_used=(first.cpu_millis_used + 1000) % 32000), *clusters[i].nodes[1:])
        clusters[i] = replace(clusters[i], nodes=nodes)

    constraints: dict[str, dict[str, object]] = {
        "no cluster constraint": {"preferences": preferences},
        "one region (data residency)": {"regions": frozenset({"eu-west-1"})},
        "selector tier=prod,team in (t1,t3)": {"selector": parse_selector("tier=prod,team in (t1,t3)", field="bench")},
    }
    gpu_types = {"GPU type H100": GPUS[1], "GPU type T4": GPUS[2], "no GPU (cpu and memory only)": ""}
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"placement against {args.clusters} clusters x {args.nodes} nodes, {args.runs} runs each")
    print("  (new shape: a cpu request never asked before, so nothing is remembered from earlier placements)")
    for label, placement in constraints.items():
        report(f"GPU pod, {label}, seen shape", timed(gpu_request(**placement), clusters, args.runs))
        report(f"GPU pod, {label}, new shape", timed(gpu_request(**placement), clusters, args.runs, new_shape(placement)))
    for label, gpu in gpu_types.items():
        if gpu != GPUS[1]:
            request = gpu_request(gpu=gpu, preferences=preferences)
            report(f"{label}, no cluster constraint, new shape", timed(request, clusters, args.runs, new_shape({"preferences": preferences}, gpu)))
    unconstrained = gpu_request(preferences=preferences)
    report("GPU pod, no cluster constraint, one cluster changed before each", timed(unconstrained, clusters, args.runs, one_cluster_changed))
    table_runs = max(10, args.runs // 10)
    report("GPU pod, no cluster constraint, new shape, every verdict read", timed(unconstrained, clusters, table_runs, new_shape({"preferences": preferences}), table=True))
    report("GPU pod, no cluster constraint, seen shape, every verdict read", timed(unconstrained, clusters, table_runs, table=True))
    report("GPU pod, no cluster constraint, new shape, as the runner stores it", timed(unconstrained, clusters, args.runs, new_shape({"preferences": preferences}), stored=True))


def new_shape(placement: dict[str, object], gpu: str = GPUS[1]) -> Callable[[int], PodRequest]:
    def make(run: int) -> PodRequest:
        return gpu_request(cpu=f"{2000 + run + 1}m", gpu=gpu, **placement)

    return make


def report(label: str, figures: tuple[float, float, float, str]) -> None:
    wall, cpu, p99, chosen = figures
    print(f"  {label}: cpu median {cpu:.2f} ms, p99 {p99:.2f} ms (wall median {wall:.2f} ms; chose {chosen or 'none'})")


if __name__ == "__main__":
    main()
