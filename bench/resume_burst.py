"""The burst a gateway restart sends to an API server with N pods in flight (issue 16, docs/decisions/0038).

Usage: flock /tmp/podgate-bench.lock .venv/bin/python bench/resume_burst.py [--pods N] [--max-in-flight M]
       [--latency S] [--podgate PATH]

Starts `podgate sim` (bench/clusters_virtual.yaml: virtual nodes) and `podgate serve` (SQLite in its state
directory), submits N pods to one cluster (10 minutes each, logs followed), waits until all run, SIGKILLs the
gateway and starts it again on the same state. Then, per the simulator's counters on that cluster, from the new
gateway's start until every resumed runner has reopened its pod's log (each does so at its first look, after
listing its events): the API requests per (verb, resource), the most in flight at once per kind and of short
requests (not watches, logs, exec), the 429s answered, the wall time, and the gateway's CPU time. Warnings that
held events may be missing (a failed events LIST: `could not list the events`) are counted from the gateway log.

`--max-in-flight M` makes the simulated API server refuse a short request over M in flight with 429 and
Retry-After 1 s, as a kube-apiserver's max-in-flight filter does (priority and fairness queues first, then
rejects alike). `--latency S` delays every answer by S seconds (a busy API server). `--podgate PATH` runs another
build's gateway against this simulator (e.g. /work/wt/base/.venv/bin/podgate, main before this change).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import POD_CLUSTER, POD_REGION, poll, submit_all, wait_running
from bench._pods import channels, new_id, pod_request
from bench._stack import CLUSTERS, PODGATE, GatewayProcess, Simulator, Stack

POD_SECONDS = 600.0
LOST_WARNING = "could not list the events"


def peaks_text(body: dict[str, object], key: str) -> str:
    entries = body.get(key) or []
    assert isinstance(entries, list)
    field = "peak" if key == "peaks" else "count"
    return ", ".join(f"{e['verb']} {e['resource'] or '-'} {e[field]}" for e in entries if e[field])


async def open_logs(sim: Simulator) -> int:
    body = await sim.requests(POD_CLUSTER)
    entries = body.get("inFlight") or []
    assert isinstance(entries, list)
    return sum(e["count"] for e in entries if (e["verb"], e["resource"]) == ("get", "pods/log"))


async def run(args: argparse.Namespace, tmp: Path) -> None:
    sim = Simulator(CLUSTERS, tmp / "kubeconfigs", tmp / "sim.log")
    gateway = GatewayProcess(CLUSTERS, tmp, tmp / "gateway-1.log", podgate=args.podgate)
    try:
        requests = [pod_request(new_id("burst"), duration=POD_SECONDS, regions=(POD_REGION,), log_lines=10)
                    for _ in range(args.pods)]  # fmt: skip
        async with channels(gateway.address, 20) as stubs:
            submitted = await submit_all(stubs, requests, callers=100)
        assert submitted.accepted == args.pods, submitted.errors
        stack = Stack(sim=sim, gateways=[gateway], state_dir=tmp)
        running = await wait_running(stack, args.pods)
        assert await poll(lambda: _logs_at_least(sim, running), every=0.5, within=300), "logs not all open"
        await asyncio.sleep(2.0)  # the runners' Running and held items settle as they do in service
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait()
        gateway.stop()
        await sim.reset(POD_CLUSTER)
        await sim.set_faults(POD_CLUSTER, maxInFlight=args.max_in_flight, latency=args.latency, retryAfter=1)
        started = time.monotonic()
        gateway = GatewayProcess(CLUSTERS, tmp, tmp / "gateway-2.log", podgate=args.podgate)
        serving = time.monotonic() - started
        resumed = await poll(lambda: _logs_at_least(sim, running), every=0.1, within=600)
        wall = time.monotonic() - started
        cpu = gateway.cpu_seconds()
        body = await sim.requests(POD_CLUSTER)
        await sim.set_faults(POD_CLUSTER, maxInFlight=0, latency=0)
        counters = body.get("counters") or []
        assert isinstance(counters, list)
        counts = {(c["verb"], c["resource"]): c["count"] for c in counters}
        warned = [line for line in (tmp / "gateway-2.log").read_text().splitlines() if LOST_WARNING in line]
        print(f"restart with {running} pods in flight on {POD_CLUSTER} (max in flight {args.max_in_flight or 'none'}, "
              f"latency {args.latency:g} s), gateway {args.podgate}:")  # fmt: skip
        print(f"  serving after {serving:.1f} s; all runners resumed (every log reopened): "
              f"{'after ' + format(wall, '.1f') + ' s' if resumed else 'NOT within 600 s'}; gateway CPU {cpu:.1f} s")  # fmt: skip
        print(f"  requests: list events {counts.get(('list', 'events'), 0)}, get pods/log "
              f"{counts.get(('get', 'pods/log'), 0)} (counted once closed), get pods {counts.get(('get', 'pods'), 0)}, "
              f"all {sum(counts.values())}")  # fmt: skip
        print(f"  most in flight at once: short requests {body.get('peakShortInFlight')}; {peaks_text(body, 'peaks')}")
        print(f"  429s answered {body.get('answered429')}; warnings that held events may be missing: {len(warned)}")
        if warned:
            print(f"  e.g. {warned[0][-300:]}")
    finally:
        gateway.stop()
        sim.stop()


async def _logs_at_least(sim: Simulator, count: int) -> bool:
    return await open_logs(sim) >= count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--max-in-flight", type=int, default=0, help="the API server's limit (0: none)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument("--podgate", type=Path, default=PODGATE, help="the gateway build to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resume-burst-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
