"""The gateway's event loop choice (server.event_loop), and the simulator and Kubernetes client on uvloop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import uvloop

from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.kubeapi.errors import BadRequest
from gateway.credentials.base import Endpoint
from gateway.credentials.static import StaticProvider
from gateway.eventloop import LoopUnavailable, loop_factory
from gateway.sim.cluster import SimCluster
from gateway.sim.config import NodeSpec, SimClusterSpec


def test_auto_and_uvloop_choose_uvloop_and_asyncio_the_standard_loop() -> None:
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None


def test_the_embedded_clusters_keep_the_standard_loop() -> None:
    """Their pods are processes spawned from the gateway's process, which die on uvloop (exit 134)."""
    assert loop_factory("auto", embedded_clusters=True) is None
    assert loop_factory("asyncio", embedded_clusters=True) is None
    with pytest.raises(LoopUnavailable, match="embedded local clusters"):
        loop_factory("uvloop", embedded_clusters=True)


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` meets when it is not installed
    assert loop_factory("auto") is None
    with pytest.raises(LoopUnavailable, match="uvloop is not installed"):
        loop_factory("uvloop")


async def _create_and_follow(tmp_path: Path, runtime: str) -> tuple[int, list[str], str, int]:
    spec = SimClusterSpec(name="kube-a", nodes=(NodeSpec(name="n1", runtime=runtime),))
    cluster = SimCluster(spec, kubeconfig_dir=tmp_path)
    await cluster.start()
    try:
        provider = StaticProvider(cluster.name, Endpoint(server=cluster.url, ca_data=cluster.ca_pem), cluster.admin_token)
        async with ClusterClient(provider) as client:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "annotations": {"sim.podgate.io/log-lines": "one\ntwo", "sim.podgate.io/duration": "0.2"}},
                "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo one; echo two"]}]},
            }
            await client.create_pod("default", pod)
            lines: list[str] = []
            deadline = asyncio.get_running_loop().time() + 60  # bounds a failure only: forks start slowly under load
            while not lines and asyncio.get_running_loop().time() < deadline:
                try:
                    lines = [line async for line in client.stream_logs("default", "p", "main", follow=True)]
                except BadRequest as e:  # what a real API server answers before the container starts
                    assert "is waiting to start" in str(e), e
                if not lines:
                    await asyncio.sleep(0.05)
        return cluster.port, lines, type(asyncio.get_running_loop()).__module__, cluster.http2_connections_accepted
    finally:
        await cluster.stop()


@pytest.mark.parametrize("runtime", ["virtual", "process"])
def test_the_simulator_and_a_followed_log_work_on_uvloop(tmp_path: Path, runtime: str) -> None:
    """The simulator found its port by `isinstance(server, asyncio.Server)`, which uvloop's server is not:
    on uvloop it stayed at port 0 and every URL pointed nowhere. The embedded clusters of `podgate serve`
    run on the gateway's loop, real processes (fork, namespaces, pidfd) included. The log goes over HTTP/2
    (ALPN on uvloop's TLS, the simulator's protocol switch, the client's h2 connection)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        port, lines, loop, http2_connections = runner.run(_create_and_follow(tmp_path, runtime))
    assert loop.startswith("uvloop")
    assert port != 0
    assert lines == ["one", "two"]
    assert http2_connections == 1
