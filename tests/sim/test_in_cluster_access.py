"""Pods on a simulated cluster see their API server the way in-cluster pods do."""

from __future__ import annotations

import asyncio

from gateway.sim.cluster import SimWorld


async def test_pod_gets_service_env_and_a_working_service_account_token(sim_world: SimWorld) -> None:
    cluster = next(iter(sim_world.clusters.values()))
    script = (
        "import os, ssl, urllib.request\n"
        "d = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "url = f\"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}/version\"\n"
        "ctx = ssl.create_default_context(cafile=f'{d}/ca.crt')\n"
        "req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + open(f'{d}/token').read()})\n"
        "print(urllib.request.urlopen(req, context=ctx).status, open(f'{d}/namespace').read())\n"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "incluster", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "python:3.12", "command": ["python", "-c", script]}],
        },
    }
    cluster.store.create("pods", pod)
    for _ in range(200):
        phase = cluster.store.get("pods", "default", "incluster").get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            break
        await asyncio.sleep(0.05)
    log = b"".join(
        [
            c
            async for c in cluster.kubelet.logs(
                "default",
                "incluster",
                "c",
                follow=False,
                timestamps=False,
                since_time=None,
                since_seconds=None,
                tail_lines=None,
                limit_bytes=None,
                previous=False,
            )
        ]
    ).decode()
    assert phase == "Succeeded", log
    assert log.strip() == "200 default"
