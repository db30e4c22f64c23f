"""The burst of deletes that N pods finishing together send to their API server, and what it costs.

Usage: flock /tmp/podgate-bench.lock .venv/bin/python bench/finish_burst.py [--pods N] [--max-in-flight M]
       [--latency S] [--duration S] [--podgate PATH]

Starts `podgate sim` (bench/clusters_virtual.yaml: virtual nodes) and `podgate serve`, submits N pods to one
cluster at once (each runs `--duration` seconds: they finish within a few hundred ms of each other), waits until
all run, then makes the simulated API server throttle (`--max-in-flight M`: a short request over M in flight is
answered 429 with Retry-After 1 s, as kube-apiserver's max-in-flight filter; `--latency S` every answer S late)
and reads its counters from then until every pod is deleted: delete requests (429s included), the most deletes
and short requests in flight at once, 429s, the time from the first pod's end to the last delete, and the gateway's
CPU time over that window. `--podgate PATH` runs another build's gateway against this simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import POD_CLUSTER, POD_REGION, poll, submit_all, wait_running
from bench._pods import BENCH_LABEL, NAMESPACE, channels, cluster_client, new_id, pod_request
from bench._stack import CLUSTERS, PODGATE, GatewayProcess, Simulator, Stack


async def bench_pods(stack: Stack) -> int:
    """The bench's pods still on the cluster (deleted ones are gone: grace applies to running containers)."""
    async with cluster_client(POD_CLUSTER, stack.kubeconfig_dir) as client:
        return len((await client.list_pods(NAMESPACE, label_selector=BENCH_LABEL)).items)


def counted(body: dict[str, object], key: str, verb: str, resource: str) -> int:
    entries = body.get(key) or []
    assert isinstance(entries, list)
    field = "peak" if key == "peaks" else "count"
    return sum(e[field] for e in entries if (e["verb"], e["resource"]) == (verb, resource))


async def run(args: argparse.Namespace, tmp: Path) -> None:
    sim = Simulator(CLUSTERS, tmp / "kubeconfigs", tmp / "sim.log")
    gateway = GatewayProcess(CLUSTERS, tmp, tmp / "gateway.log", podgate=args.podgate)
    try:
        stack = Stack(sim=sim, gateways=[gateway], state_dir=tmp)
        requests = [pod_request(new_id("finish"), duration=args.duration, regions=(POD_REGION,))
                    for _ in range(args.pods)]  # fmt: skip
        async with channels(gateway.address, 20) as stubs:
            submitted = await submit_all(stubs, requests, callers=args.pods)
        started = time.monotonic()
        assert submitted.accepted == args.pods, submitted.errors
        running = await wait_running(stack, args.pods)
        if time.monotonic() - started > args.duration - 2:
            print(f"  (the pods took {time.monotonic() - started:.1f} s to run: raise --duration)")
        await sim.reset(POD_CLUSTER)
        await sim.set_faults(POD_CLUSTER, maxInFlight=args.max_in_flight, latency=args.latency, retryAfter=1)
        cpu_before = gateway.cpu_seconds()
        ends = started + args.duration  # the first pods end about then
        deleted = await poll(lambda: _none_left(stack), every=0.2, within=args.duration + 300)
        wall = time.monotonic() - ends
        cpu = gateway.cpu_seconds() - cpu_before
        body = await sim.requests(POD_CLUSTER)
        await sim.set_faults(POD_CLUSTER, maxInFlight=0, latency=0)
        print(f"{running} pods finishing together on {POD_CLUSTER} (max in flight {args.max_in_flight or 'none'}, "
              f"latency {args.latency:g} s), gateway {args.podgate}:")  # fmt: skip
        print(f"  all deleted {'after ' + format(wall, '.1f') + ' s from the first end' if deleted else 'NOT in time'};"
              f" gateway CPU {cpu:.2f} s from the throttle on")  # fmt: skip
        print(f"  delete requests {counted(body, 'counters', 'delete', 'pods')} (429s included), most deletes in flight "
              f"{counted(body, 'peaks', 'delete', 'pods')}, most short requests in flight {body.get('peakShortInFlight')}, "
              f"429s answered {body.get('answered429')}")  # fmt: skip
    finally:
        gateway.stop()
        sim.stop()


async def _none_left(stack: Stack) -> bool:
    return await bench_pods(stack) == 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=60)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds each pod runs")
    parser.add_argument("--max-in-flight", type=int, default=10, help="the API server's limit (0: none)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every API answer")
    parser.add_argument("--podgate", type=Path, default=PODGATE, help="the gateway build to run")
    return parser.parse_args()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="finish-burst-") as directory:
        asyncio.run(run(arguments(), Path(directory)))
