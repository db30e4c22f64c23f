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
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store import databases
from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "clusters" / "local.yaml"
BIN = Path(sys.executable).parent


def start_replica(tmp: Path, name: str, url: str, lease: float) -> tuple[subprocess.Popen[str], str]:
    state = tmp / name
    shutil.copytree(tmp / "kubeconfigs", state / "kubeconfigs")
    config = tmp / f"{name}.yaml"
    settings = {
        "server": {"listen": "127.0.0.1:0", "state_dir": str(state)},
        "clusters": {"files": [str(LOCAL)]},
        "database": {"url": url, "lease_seconds": lease},
        "metrics": {"listen": "off"},
    }
    config.write_text(yaml.safe_dump(settings))
    log = (tmp / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "podgate"), "serve", "--config", str(config)], stdout=subprocess.PIPE, stderr=log, text=True
    )
    assert proc.stdout is not None
    printed = ""
    while not (match := re.search(r"serving on (127\.0\.0\.1:\d+)", printed)):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"{name} did not start: {(tmp / f'{name}.log').read_text()[-2000:]}")
        printed += line
    return proc, match.group(1)


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
    (victim, a0), (survivor, a1) = await asyncio.gather(
        asyncio.to_thread(start_replica, tmp, f"r0-{n}", url, args.lease),
        asyncio.to_thread(start_replica, tmp, f"r1-{n}", url, args.lease),
    )
    try:
        ids = [f"takeover-{n}-{i}" for i in range(args.pods)]
        async with grpc.aio.insecure_channel(a0) as channel:
            stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
            for request_id in ids:
                await stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod(request_id)), timeout=30)
        await asyncio.gather(*(running(a0, r) for r in ids))
        results = [asyncio.create_task(result_at(a1, r)) for r in ids]
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        done = await asyncio.gather(*results)
        return min(done) - killed, max(done) - killed
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(proc.wait)


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
