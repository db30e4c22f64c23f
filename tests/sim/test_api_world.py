"""The whole local world in the test's own event loop (the gateway's embedded mode): three clusters, a
merged kubeconfig, a pod run to completion and followed by a watch, nothing left behind."""

from __future__ import annotations

import json

import aiohttp
import yaml

from gateway.sim.cluster import SimWorld
from tests.sim.leaks import no_leaks  # noqa: F401 - module-scoped check: no process or mount left


async def test_world_serves_each_cluster_and_runs_a_pod_to_completion(sim_world: SimWorld) -> None:
    merged = yaml.safe_load(sim_world.kubeconfig_path.read_text())
    assert [c["name"] for c in merged["contexts"]] == ["local-eu-gpu", "local-eu-cpu", "local-us-gpu"]
    ports = {c.port for c in sim_world.clusters.values()}
    assert len(ports) == 3
    cluster = sim_world.clusters["local-us-gpu"]
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    connector = aiohttp.TCPConnector(ssl=cluster.ssl_context())
    pod = {
        "metadata": {"name": "gpu-job"},
        "spec": {
            "restartPolicy": "Never",
            "tolerations": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", "echo done"],
                    "resources": {"limits": {"nvidia.com/gpu": "2"}},
                }
            ],
        },
    }
    async with aiohttp.ClientSession(cluster.url, connector=connector, headers=headers) as http:
        version = await (await http.get("/version")).json()
        assert version["major"] == "1"
        listed = await (await http.get("/api/v1/namespaces/default/pods")).json()
        created = await http.post("/api/v1/namespaces/default/pods", json=pod)
        assert created.status == 201
        phases = []
        params = {"watch": "1", "resourceVersion": listed["metadata"]["resourceVersion"], "timeoutSeconds": "20"}
        async with http.get("/api/v1/namespaces/default/pods", params=params) as stream:
            async for line in stream.content:
                obj = json.loads(line)["object"]
                phases.append(obj["status"]["phase"])
                if phases[-1] in ("Succeeded", "Failed"):
                    break
        assert phases[-1] == "Succeeded", phases
        assert obj["spec"]["nodeName"] == "us-gpu-h100-1"  # the only node with GPUs, tolerated taint
        log = await (await http.get("/api/v1/namespaces/default/pods/gpu-job/log")).text()
        assert log == "done\n"
