"""10,000 pods on virtual nodes in one simulated cluster: creates/s through real HTTPS, and a watch that
must see every transition.

The simulator runs as `podgate sim` in its own process (as it does for a developer), on a generated
cluster file with virtual nodes. This process creates pods over several concurrent HTTPS connections
while one watch, opened before the first create, follows every pod to the end. Printed:
- creates/s (wall time of all creates, as acknowledged by the API server);
- watch completeness: for every pod, the last state the watch delivered equals the pod's state in a
  final list (same resourceVersion), the watch stream never broke, and with the virtual runtime each pod's
  phases Pending -> Running -> Succeeded were all seen;
- the API requests the simulator counted (from its control endpoint).

    .venv/bin/python bench/sim_pods.py [--pods 10000] [--concurrency 32] [--nodes 10] [--api-only]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import yaml

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_DIR")
CLUSTER = "bench"


def cluster_file(nodes: int, pods: int) -> dict[str, Any]:
    per_node = str(pods // nodes + 10)
    return {
        "clusters": [
            {
                "name": CLUSTER,
                "allowedNamespaces": ["default"],
                "sim": {
                    "nodes": [
                        {
                            "name": f"virtual-{i}",
                            "runtime": "virtual",
                            "allocatable": {"cpu": "1000", "memory": "4000Gi", "pods": per_node},
                        }
                        for i in range(nodes)
                    ],
                    "runtime": {"events": False},
                    "bookmarkSeconds": 5,
                },
            }
        ]
    }


def pod(i: int, api_only: bool) -> dict[str, Any]:
    spec_extra = {"schedulerName": "nobody"} if api_only else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bench-{i:05d}",
            "labels": {"app": "bench"},
            "annotations": {"sim.podgate.io/duration": "0.5", "sim.podgate.io/log-lines": "hello"},
        },
        "spec": {
            **spec_extra,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["true"],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


class Simulator:
    """`podgate sim` as a child process; reads the kubeconfig and control endpoint file it writes."""

    def __init__(self, config: Path, kubeconfig_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES}
        podgate = Path(sys.executable).parent / "podgate"
        self.process = subprocess.Popen(
            [str(podgate), "sim", "--config", str(config), "--kubeconfig-dir", str(kubeconfig_dir)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        for _ in range(4):  # header, the cluster, the merged kubeconfig, the control endpoint
            self.process.stdout.readline()
        control = yaml.safe_load((kubeconfig_dir / "control.yaml").read_text())
        self.control_url, self.control_token = control["url"], control["token"]
        kubeconfig = yaml.safe_load((kubeconfig_dir / f"{CLUSTER}.kubeconfig").read_text())
        self.url = kubeconfig["clusters"][0]["cluster"]["server"]
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        self.ssl = ssl.create_default_context(cadata=ca)
        self.headers = {"Authorization": f"Bearer {kubeconfig['users'][0]['user']['token']}"}

    def cpu_seconds(self) -> float:
        """CPU time the simulator process has used: the figure that does not depend on other load."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


class WatchRecord:
    def __init__(self) -> None:
        self.last: dict[str, dict[str, Any]] = {}
        self.phases: dict[str, list[str]] = defaultdict(list)
        self.events = 0
        self.broken: str | None = None
        self.done = asyncio.Event()
        self.expected = 0
        self.finished = 0

    def see(self, event: dict[str, Any]) -> None:
        if event["type"] == "BOOKMARK":
            return
        if event["type"] == "ERROR":
            self.broken = json.dumps(event["object"])
            return
        obj = event["object"]
        name = obj["metadata"]["name"]
        self.events += 1
        self.last[name] = obj
        phase = obj.get("status", {}).get("phase", "")
        seen = self.phases[name]
        if not seen or seen[-1] != phase:
            if phase in ("Succeeded", "Failed"):
                self.finished += 1
            seen.append(phase)
        if self.expected and self.finished >= self.expected:
            self.done.set()


async def follow(session: aiohttp.ClientSession, sim: Simulator, rv: str, record: WatchRecord) -> None:
    params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "3600", "allowWatchBookmarks": "true"}
    async with session.get(f"{sim.url}/api/v1/namespaces/default/pods", params=params) as response:
        async for line in response.content:
            if line.strip():
                record.see(json.loads(line))
    if not record.done.is_set():
        record.broken = record.broken or "the watch stream ended early"
        record.done.set()


async def create_all(
    session: aiohttp.ClientSession, sim: Simulator, count: int, concurrency: int, api_only: bool
) -> float:
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            async with session.post(f"{sim.url}/api/v1/namespaces/default/pods", json=pod(i, api_only)) as response:
                if response.status != 201:
                    raise RuntimeError(f"create bench-{i:05d}: {response.status} {await response.text()}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench(sim: Simulator, count: int, concurrency: int, settle: float, api_only: bool) -> None:
    connector = aiohttp.TCPConnector(ssl=sim.ssl, limit=concurrency + 2)
    async with aiohttp.ClientSession(connector=connector, headers=sim.headers) as session:
        async with session.get(f"{sim.url}/api/v1/namespaces/default/pods") as response:
            rv = (await response.json())["metadata"]["resourceVersion"]
        record = WatchRecord()
        watcher = asyncio.create_task(follow(session, sim, rv, record))
        cpu_before, own_before = sim.cpu_seconds(), time.process_time()
        elapsed = await create_all(session, sim, count, concurrency, api_only)
        cpu, own = sim.cpu_seconds() - cpu_before, time.process_time() - own_before
        print(
            f"created {count} pods in {elapsed:.2f} s over {concurrency} connections: {count / elapsed:,.0f} creates/s"
            + (" (API server alone: no pod is scheduled)" if api_only else "")
        )
        print(
            f"simulator CPU during the creates: {cpu:.2f} s = {cpu / count * 1000:.2f} ms per pod "
            f"({count / cpu:,.0f} creates per CPU-second); this client: {own:.2f} s CPU; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        record.expected = 0 if api_only else count
        started = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(record.done.wait(), 0.5 if api_only else settle)
        if not api_only:
            print(
                f"all pods terminal {time.perf_counter() - started:.2f} s after the last create"
                if record.done.is_set() and not record.broken
                else f"not all pods terminal within {settle:.0f} s"
            )
        async with session.get(f"{sim.url}/api/v1/namespaces/default/pods") as response:
            final = {p["metadata"]["name"]: p for p in (await response.json())["items"]}
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        report(record, final, count)
        control = {"Authorization": f"Bearer {sim.control_token}"}
        async with session.get(f"{sim.control_url}/clusters/{CLUSTER}/requests", headers=control) as response:
            counters = (await response.json())["counters"]
        print(
            "API requests counted by the simulator:",
            ", ".join(f"{c['verb']} {c['resource'] or '-'}: {c['count']}" for c in counters),
        )


def report(record: WatchRecord, final: dict[str, dict[str, Any]], count: int) -> None:
    stale = [
        n
        for n, p in final.items()
        if record.last.get(n, {}).get("metadata", {}).get("resourceVersion") != p["metadata"]["resourceVersion"]
    ]
    full = sum(
        1
        for n in final
        if record.phases[n][:1] == ["Pending"] and record.phases[n][-1] == "Succeeded" and "Running" in record.phases[n]
    )
    print(f"watch: {record.events:,} events for {len(record.last):,} pods; stream broken: {record.broken or 'no'}")
    print(
        f"watch completeness: {len(final) - len(stale):,}/{len(final):,} pods' final state seen "
        f"(pods listed: {len(final):,}/{count:,}); Pending->Running->Succeeded seen for {full:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to wait for all pods to finish")
    parser.add_argument(
        "--api-only",
        action="store_true",
        help="pods name a scheduler that does not exist: measures the API server alone",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="podgate-bench-") as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(yaml.safe_dump(cluster_file(args.nodes, args.pods)))
        sim = Simulator(config, Path(tmp) / "kubeconfigs")
        try:
            asyncio.run(bench(sim, args.pods, args.concurrency, args.settle, args.api_only))
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
