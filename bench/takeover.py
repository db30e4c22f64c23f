"""Takeover time after SIGKILL: two `podgate serve` replicas on one PostgreSQL database (docs/decisions/0021).

Usage: .venv/bin/python bench/takeover.py [--pods N] [--lease S] [--rounds R]

Each round submits N short pods (one log line each) to replica r0, waits until every one is Running,
SIGKILLs r0, and reports the time from the kill to the first and to the last result the clients read
from r1 (each of those pods finished while r0 was dead, so its result needed a takeover). r1 must wait
for r0's lease to run out (--lease, `database.lease_seconds`) and claim at its next round (every third of
the lease). Simulated clusters of clusters/local.yaml in this process, over real HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._databases import databases
from bench._stack import start_replicas
from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "clusters" / "local.yaml"


def pod(request_id: str) -> dispatch_pb2.PodRequest:
    code = "import time; print('hello', flush=True); time.sleep(1.5)"
    container = {"name": "base", "image": "python:3.12", "command": ["python", "-c", code]}
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "takeover"}, "spec": {"containers": [container]}}
    return dispatch_pb2.PodRequest(request_id=request_id, pod_json=json.dumps(manifest))


async def running(address: str, request_id: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        async for response in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id), timeout=60):
            if response.event.WhichOneof("event") == "log":
                return


async def result_at(address: str, request_id: str) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        async for response in stub.WatchPod(dispatch_pb2.WatchPodRequest(request_id=request_id), timeout=120):
            if response.event.WhichOneof("event") == "result":
                return time.monotonic()
    raise RuntimeError(f"{request_id}: no result")


async def one_round(url: str, tmp: Path, args: argparse.Namespace, n: int) -> tuple[float, float]:
    env = {"PODGATE_DATABASE_LEASE_SECONDS": f"{args.lease:g}", "PODGATE_METRICS_LISTEN": "off"}
    dirs = [tmp / f"r0-{n}", tmp / f"r1-{n}"]
    victim, survivor = await asyncio.to_thread(start_replicas, LOCAL, tmp / "kubeconfigs", dirs, database_url=url, env=env)
    a0, a1 = victim.address, survivor.address
    try:
        ids = [f"takeover-{n}-{i}" for i in range(args.pods)]
        async with grpc.aio.insecure_channel(a0) as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            for request_id in ids:
                await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod(request_id)), timeout=30)
        await asyncio.gather(*(running(a0, r) for r in ids))
        results = [asyncio.create_task(result_at(a1, r)) for r in ids]
        killed = time.monotonic()
        victim.process.send_signal(signal.SIGKILL)
        done = await asyncio.gather(*results)
        return min(done) - killed, max(done) - killed
    finally:
        for replica in (victim, survivor):
            await asyncio.to_thread(replica.stop)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        async with (
            databases(postgres=True) as new_database,
            SimWorld.from_file(LOCAL, kubeconfig_dir=tmp / "kubeconfigs", control_port=None),
        ):
            firsts, lasts = [], []
            for n in range(args.rounds):
                first, last = await one_round(await new_database(f"takeover_{n}"), tmp, args, n)
                firsts.append(first)
                lasts.append(last)
                print(f"round {n}: kill -> first result {first:.2f} s, last of {args.pods} {last:.2f} s")
    print(
        f"lease {args.lease:g} s, {args.pods} pods: kill -> first result median {statistics.median(firsts):.2f} s, "
        f"last median {statistics.median(lasts):.2f} s over {args.rounds} rounds"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--lease", type=float, default=15.0, help="database.lease_seconds")
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
