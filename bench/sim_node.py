"""The simulator's node side alone (no HTTP): how fast the scheduler and the virtual kubelet move pods.

Creates N pods straight into an ObjectStore with a Scheduler and a Kubelet on virtual nodes, and
prints: pods created per second (with scheduling and kubelet work interleaved, as in the server), the
time until every pod is Succeeded, the per-pod cost of the node side, and the memory held per pod.
One watch opened before the first create must see Pending -> Running -> Succeeded for every pod.

With `--process N` it instead runs N pods of `sh -c true` on a `process` node (real processes in their
own namespaces), one after another, and prints the create -> Succeeded latency.

    .venv/bin/python bench/sim_node.py [--pods 10000] [--nodes 10] [--process N]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from typing import Any

from gateway.sim.kubelet import Kubelet
from gateway.sim.scheduler import Scheduler
from gateway.sim.store import ObjectStore


def node(name: str, pods: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {"sim.podgate.io/runtime": "virtual"}},
        "status": {"allocatable": {"cpu": "1000", "memory": "4000Gi", "pods": str(pods)}},
    }


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "annotations": {"sim.podgate.io/duration": "0.5"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.12", "resources": {"requests": {"cpu": "100m"}}}],
        },
        "status": {"phase": "Pending"},
    }


async def follow(store: ObjectStore, pods: int, phases: dict[str, list[str]]) -> None:
    watch = store.watch("pods", "default", queue_size=10 * pods)
    done = 0
    async for _, obj in watch:
        seen = phases.setdefault(obj["metadata"]["name"], [])
        phase = obj["status"]["phase"]
        if not seen or seen[-1] != phase:
            seen.append(phase)
            done += phase == "Succeeded"
        if done == pods:
            break
    watch.close()


async def main(pods: int, nodes: int) -> None:
    store = ObjectStore(history=10 * pods)
    names = [f"virtual-{i}" for i in range(nodes)]
    for name in names:
        store.create("nodes", node(name, pods // nodes + 10))
    scheduler, kubelet = Scheduler(store), Kubelet(store, names, {"events": False})
    await scheduler.start()
    await kubelet.start()
    phases: dict[str, list[str]] = {}
    watcher = asyncio.create_task(follow(store, pods, phases))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    cpu_start = time.process_time()
    for i in range(pods):
        store.create("pods", pod(f"p{i}"))
        if i % 50 == 49:
            await asyncio.sleep(0)  # as the API server yields between requests
    created = time.perf_counter() - start
    await watcher
    finished = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    complete = sum(1 for p in phases.values() if p == ["Pending", "Running", "Succeeded"])
    print(f"created {pods:,} pods in {created:.2f} s: {pods / created:,.0f} creates/s (node side interleaved)")
    print(f"all {pods:,} Succeeded {finished:.2f} s after the first create (each runs 0.5 s)")
    print(f"CPU for the whole run: {cpu:.2f} s = {1000 * cpu / pods:.2f} ms per pod (store writes included)")
    print(f"watch saw Pending->Running->Succeeded for {complete:,}/{pods:,} pods")
    print(
        f"max RSS grew {(rss_after - rss_before) / 1024:.0f} MiB ({(rss_after - rss_before) * 1024 / pods:,.0f} B/pod)"
    )
    await kubelet.stop()
    await scheduler.stop()


async def process_latency(pods: int) -> None:
    store = ObjectStore()
    store.create("nodes", {"metadata": {"name": "proc-1"}, "status": {"allocatable": {"cpu": "8", "pods": "110"}}})
    scheduler, kubelet = Scheduler(store), Kubelet(store, ["proc-1"])
    await scheduler.start()
    await kubelet.start()
    latencies = []
    for i in range(pods):
        body = pod(f"proc-{i}")
        body["spec"]["containers"][0].update(image="busybox", command=["sh", "-c", "true"])
        watch = store.watch("pods", "default", field_selector=f"metadata.name=proc-{i}")
        start = time.perf_counter()
        store.create("pods", body)
        async for _, obj in watch:
            if obj["status"]["phase"] in ("Succeeded", "Failed"):
                break
        latencies.append(time.perf_counter() - start)
        watch.close()
    latencies.sort()
    median, p90 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.9)]
    print(
        f"{pods} process pods one after another: create -> Succeeded median {median * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms"
    )
    await kubelet.stop()
    await scheduler.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--process", type=int, default=0, help="time N real-process pods instead")
    args = parser.parse_args()
    asyncio.run(process_latency(args.process) if args.process else main(args.pods, args.nodes))
