"""Throughput of the Kubernetes API client against one simulated cluster over HTTPS.

Usage: .venv/bin/python bench/kubeapi.py [--requests N] [--concurrency C] [--events E]
Prints GETs/s (C concurrent callers sharing one client), pod creates/s, and watch events/s delivered
by list_then_watch while pods are created. The simulator shares the process and its two cores, so
the figures are a floor for the client, not the API server's capacity. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import aclosing

from gateway.clusters import kubeapi as k
from gateway.credentials.base import Endpoint
from gateway.credentials.static import StaticProvider
from gateway.sim.cluster import SimCluster
from gateway.sim.config import SimClusterSpec


def pod(i: int) -> dict[str, object]:
    return {"metadata": {"name": f"bench-{i}"}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


async def gets(client: k.ClusterClient, total: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await client.get_version()

    started = time.perf_counter()
    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
    return (total // concurrency * concurrency) / (time.perf_counter() - started)


async def creates_and_watch(client: k.ClusterClient, total: int) -> tuple[float, float]:
    target = k.WatchTarget(resource=k.PODS, namespace="default")
    seen = 0
    async with aclosing(k.list_then_watch(client, target)) as events:
        await anext(events)  # RELISTED
        started = time.perf_counter()
        for i in range(total):
            await client.create_pod("default", pod(i))
        created = time.perf_counter() - started
        async for event in events:
            seen += event.type is k.EventType.ADDED
            if seen == total:
                break
        watched = time.perf_counter() - started
    return total / created, total / watched


async def main(requests: int, concurrency: int, events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = SimCluster(SimClusterSpec(name="bench"), kubeconfig_dir=tmp, node_side=False)
        await cluster.start()
        try:
            provider = StaticProvider(
                "bench", Endpoint(server=cluster.url, ca_data=cluster.ca_pem), cluster.admin_token
            )
            async with k.ClusterClient(provider) as client:
                get_rate = await gets(client, requests, concurrency)
                create_rate, watch_rate = await creates_and_watch(client, events)
        finally:
            await cluster.stop()
    print(f"kubeapi GET /version: {requests} requests, {concurrency} concurrent: {get_rate:,.0f} requests/s")
    print(f"kubeapi create pod (sequential): {events} pods: {create_rate:,.0f} creates/s")
    print(
        f"kubeapi watch: {events} ADDED events through list_then_watch: {watch_rate:,.0f} events/s (with the creates)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.events))
