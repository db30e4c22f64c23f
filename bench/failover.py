"""How long a pod submitted during an outage of its preferred cluster takes to start elsewhere.

The issue-12 scenario: the preferred cluster's API server goes away, the pod is submitted `--after`
seconds later (before the health probe, every `--probe` seconds, need have noticed), and the figure is
the time from RunPod to the pod Running on another cluster. Simulated clusters of clusters/local.yaml,
in-process, over real HTTPS; the gateway in-process too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import grpc

from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import start_gateway
from gateway.settings import parse_settings
from gateway.sim.cluster import SimWorld

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "clusters" / "local.yaml"
REGIONS = ("eu-west-1", "eu-central-1")


def request() -> dispatch_pb2.PodRequest:
    container = {"name": "base", "image": "python:3.12", "command": ["python", "-c", "print('hi')"]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "failover"}, "spec": {"containers": [container]}}
    return dispatch_pb2.PodRequest(
        request_id=f"failover-{uuid.uuid4().hex[:8]}",
        pod_json=json.dumps(pod),
        placement=common_pb2.Placement(regions=list(REGIONS)),
    )


async def one_run(after: float, probe: float) -> tuple[float, str, str]:
    """(seconds from RunPod to Running, the preferred cluster, the cluster it ran on)."""
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        async with SimWorld.from_file(LOCAL, kubeconfig_dir=state / "kubeconfigs", control_port=None) as world:
            raw = {
                "server": {"listen": "127.0.0.1:0", "state_dir": str(state)},
                "clusters": {"files": [str(LOCAL)], "probe_interval_seconds": probe},
                "dispatch": {"gc_interval_seconds": 3600},
            }
            gateway = await start_gateway(parse_settings(raw, env={}))
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
                    stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
                    pod = request()
                    explained = await stub.ExplainPlacement(dispatch_pb2.ExplainPlacementRequest(pod=pod))
                    preferred = explained.decision.cluster
                    await world.clusters[preferred].outage()
                    await asyncio.sleep(after)
                    started = time.monotonic()
                    ran_on = ""
                    async for response in stub.RunPod(dispatch_pb2.RunPodRequest(pod=pod), timeout=120):
                        event = response.event
                        if event.WhichOneof("event") == "placed":
                            ran_on = event.placed.cluster
                        if event.WhichOneof("event") == "phase" and event.phase.phase == dispatch_pb2.POD_PHASE_RUNNING:
                            return time.monotonic() - started, preferred, ran_on
                    raise RuntimeError("the pod never ran")
            finally:
                await gateway.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--after", type=float, default=3.0, help="seconds into the outage the pod is submitted")
    parser.add_argument("--probe", type=float, default=60.0, help="seconds between health probes")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        seconds, preferred, ran_on = await one_run(args.after, args.probe)
        times.append(seconds)
        print(f"preferred {preferred} down; ran on {ran_on}; Running {seconds:.2f} s after RunPod", flush=True)
    print(f"submitted {args.after:.0f} s into the outage, probes every {args.probe:.0f} s: "
          f"median {statistics.median(times):.2f} s, max {max(times):.2f} s to Running elsewhere")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
