"""Kubeconfigs as networks have them: `proxy-url` (http, https, socks5), HTTPS_PROXY/NO_PROXY, and
`tls-server-name`, on every path: plain requests, followed log streams and exec over WebSocket. The
proxies are real ones on loopback that record each tunnel, so "went through the proxy" is observed."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest
import yaml

from gateway.clusters import kubeapi as k
from gateway.clusters.kubeapi import ClusterClient, EventType, WatchTarget
from gateway.clusters.kubeapi.errors import ApiUnreachable
from gateway.credentials.factory import build_provider
from gateway.domain import CredentialsRef
from gateway.sim.cluster import SimCluster, node_side_available
from gateway.sim.config import NodeSpec, SimClusterSpec
from gateway.sim.tls import server_context
from tests.integration.kubeconfig_helpers import client_for, write_kubeconfig
from tests.standins.oidc import oidc_issuer
from tests.standins.proxies import Kind, forward_proxy

NODE = NodeSpec(name="n1", allocatable={"cpu": "8", "memory": "16Gi", "pods": "110"})
# Prints three lines, then runs until the exec below leaves its marker file (or a minute passes).
SCRIPT = (
    "import os, time\n"
    "for i in range(3):\n    print('line', i, flush=True)\n"
    "end = time.time() + 60\n"
    "while not os.path.exists(os.environ['MARKER']) and time.time() < end:\n    time.sleep(0.05)\n"
)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimCluster]:
    assert node_side_available(), "the simulator's kubelet is needed for logs and exec"
    cluster = SimCluster(
        SimClusterSpec(name="kube-p", nodes=(NODE,), runtime={"isolation": False}), kubeconfig_dir=tmp_path
    )
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


def admin(sim: SimCluster, tmp_path: Path, **cluster_keys: str) -> ClusterClient:
    path = write_kubeconfig(sim, tmp_path / "net.kubeconfig", {"token": sim.admin_token}, **cluster_keys)
    return client_for(path, sim.name)


async def every_path(client: ClusterClient, pod: str, marker_dir: Path) -> None:
    """A create, a watch, an exec over WebSocket and a followed log stream, through `client`."""
    marker = marker_dir / f"{pod}.done"
    body = {"metadata": {"name": pod}, "spec": {"restartPolicy": "Never", "containers": [
        {"name": "main", "image": "python:3.12", "command": ["python3", "-u", "-c", SCRIPT],
         "env": [{"name": "MARKER", "value": str(marker)}]}]}}  # fmt: skip
    await client.create_pod("default", body)
    target = WatchTarget(resource=k.PODS, namespace="default", field_selector=f"metadata.name={pod}")
    async with asyncio.timeout(30), aclosing(k.list_then_watch(client, target)) as events:
        async for event in events:
            objects = event.objects if event.type is EventType.RELISTED else (event.object,)
            if any(o.get("status", {}).get("phase") == "Running" for o in objects):
                break
    result = await client.exec("default", pod, "main", ["sh", "-c", f"echo through && touch {marker}"])
    assert (result.exit_code, result.stdout) == (0, b"through\n")
    lines = [line async for line in client.stream_logs("default", pod, "main", follow=True)]
    assert lines == ["line 0", "line 1", "line 2"]


@pytest.mark.parametrize("kind", ["http", "https", "socks5"])
async def test_proxy_url_carries_requests_watches_logs_and_exec(sim: SimCluster, tmp_path: Path, kind: Kind) -> None:
    tls = server_context(sim.ca, sim.ca.issue_server()) if kind == "https" else None  # the cluster CA vouches
    async with forward_proxy(kind, tls=tls) as proxy, admin(sim, tmp_path, **{"proxy-url": proxy.url}) as client:
        await every_path(client, f"via-{kind}", tmp_path)
        assert not client.over_http2
    assert sim.http2_connections_accepted == 0, "HTTP/2 is not tunnelled: logs through a proxy use HTTP/1.1"
    assert proxy.tunnels, "nothing went through the proxy"
    assert set(proxy.tunnels) == {("127.0.0.1", sim.port)}
    assert len(proxy.tunnels) >= 3  # the pooled connection, the log stream and the WebSocket each tunnel


async def test_https_proxy_variable_is_honoured_and_no_proxy_bypasses_it(
    sim: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy("http") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with admin(sim, tmp_path) as client:
            await every_path(client, "via-env", tmp_path)
        assert set(proxy.tunnels) == {("127.0.0.1", sim.port)}
        for i, exemption in enumerate(("127.0.0.1", "127.0.0.0/8", "*")):
            proxy.tunnels.clear()
            monkeypatch.setenv("NO_PROXY", exemption)
            async with admin(sim, tmp_path) as client:
                await every_path(client, f"bypass-{i}", tmp_path)
            assert proxy.tunnels == [], f"NO_PROXY={exemption} did not bypass the proxy"
        assert sim.http2_connections_accepted == 3, "a log not proxied rides HTTP/2"


async def test_impersonation_holds_on_every_path(sim: SimCluster, tmp_path: Path) -> None:
    """Requests, followed logs and exec over WebSocket (through a proxy) all run as the impersonated identity."""
    user = {"token": sim.admin_token, "as": "ops-alice", "as-groups": ["system:masters"]}
    path = write_kubeconfig(sim, tmp_path / "as.kubeconfig", user)
    async with forward_proxy("socks5") as proxy:
        doc = yaml.safe_load(path.read_text())
        doc["clusters"][0]["cluster"]["proxy-url"] = proxy.url
        path.write_text(yaml.safe_dump(doc))
        async with client_for(path, sim.name) as client:
            await every_path(client, "as-alice", tmp_path)
    seen = {(r.verb, r.resource): r.user for r in sim.faults.log if r.resource.startswith("pods")}
    assert {("create", "pods"), ("list", "pods"), ("create", "pods/exec"), ("get", "pods/log")} <= set(seen)
    assert set(seen.values()) == {"ops-alice"}


async def test_proxy_url_wins_over_no_proxy(sim: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    async with forward_proxy("socks5") as proxy, admin(sim, tmp_path, **{"proxy-url": proxy.url}) as client:
        await client.list_pods("default")
    assert proxy.tunnels == [("127.0.0.1", sim.port)]


async def test_an_unreachable_proxy_is_api_unreachable_and_never_sent(sim: SimCluster, tmp_path: Path) -> None:
    async with forward_proxy("socks5") as proxy:
        dead = proxy.url
    async with admin(sim, tmp_path, **{"proxy-url": dead}) as client:
        with pytest.raises(ApiUnreachable) as caught:
            await client.get_version()
    assert caught.value.maybe_sent is False


@pytest.mark.parametrize("kind", ["direct", "socks5"])
async def test_tls_server_name_holds_on_requests_and_websocket_exec(
    sim: SimCluster, tmp_path: Path, kind: str
) -> None:
    """The API server's certificate names 127.0.0.1 and localhost: dialling 127.0.0.1 with tls-server-name
    `localhost` works, and a tls-server-name the certificate does not hold fails on every path."""
    async with forward_proxy("socks5") as proxy:
        via = {"proxy-url": proxy.url} if kind == "socks5" else {}
        async with admin(sim, tmp_path, **{"tls-server-name": "localhost"}, **via) as client:
            await every_path(client, f"named-{kind}", tmp_path)
        assert bool(proxy.tunnels) == (kind == "socks5")
        async with admin(sim, tmp_path, **{"tls-server-name": "elsewhere.example"}, **via) as client:
            with pytest.raises(ApiUnreachable, match=r"elsewhere\.example"):
                await client.list_pods("default")
            with pytest.raises(ApiUnreachable, match=r"elsewhere\.example"):
                await client.exec("default", f"named-{kind}", "main", ["true"])


async def test_the_oidc_issuer_is_reached_through_https_proxy(
    sim: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with oidc_issuer(tmp_path) as issuer, forward_proxy("http") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        _, refresh = issuer.login("alice")
        config = {"client-id": issuer.client_id, "client-secret": issuer.client_secret, "refresh-token": refresh,
                  "idp-issuer-url": issuer.url, "idp-certificate-authority": "oidc-ca.pem"}  # fmt: skip
        path = write_kubeconfig(sim, tmp_path / "oidc.kubeconfig", {"auth-provider": {"name": "oidc", "config": config}})
        provider = build_provider("kube-p", CredentialsRef(source="kubeconfig", params={"path": str(path)}))
        try:
            assert (await provider.token()) is not None
        finally:
            await provider.close()
        port = int(issuer.url.rsplit(":", 1)[1])
        assert proxy.saw("127.0.0.1", port) and issuer.refreshes == 1


PLUGIN = """
import json, os, sys
open(sys.argv[1], "w").write(os.environ["KUBERNETES_EXEC_INFO"])
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": os.environ["TOKEN"]}}))
"""


async def test_a_kubeconfig_path_list_is_merged_first_file_wins(
    sim: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG=missing:a:b, as people export it: `a` holds the cluster (with a CA file relative to `a`)
    and the context, `b` the user and another copy of the cluster; the first definition of each wins."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_kubeconfig(sim, tmp_path / "a" / "config", {"token": sim.admin_token}, ca_file=tmp_path / "a" / "ca.pem")
    doc_a = yaml.safe_load(a.read_text())
    doc_b = yaml.safe_load(a.read_text())
    doc_a["users"] = []  # `a` names a user it does not define: `b` does
    doc_b["current-context"] = "elsewhere"
    doc_b["clusters"][0]["cluster"] = {"server": "https://127.0.0.1:1", "certificate-authority": "missing.pem"}
    a.write_text(yaml.safe_dump(doc_a))
    (tmp_path / "b" / "config").write_text(yaml.safe_dump(doc_b))
    monkeypatch.setenv("PODGATE_TEST_KUBECONFIG", f"{tmp_path / 'missing'}:{a}:{tmp_path / 'b' / 'config'}")
    provider = build_provider("kube-p", CredentialsRef(source="kubeconfig", params={"envVar": "PODGATE_TEST_KUBECONFIG"}))
    async with ClusterClient(provider) as client:
        await client.list_pods("default")
        assert (await provider.endpoint()).server == sim.url


async def test_provide_cluster_info_passes_a_file_ca_as_data(sim: SimCluster, tmp_path: Path) -> None:
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN)
    sim.add_static_token("plugin-token", "carol", ("system:masters",))
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script), str(tmp_path / "info.json")],
            "env": [{"name": "TOKEN", "value": "plugin-token"}],
            "provideClusterInfo": True,
        }
    }
    path = write_kubeconfig(sim, tmp_path / "exec.kubeconfig", user, ca_file=tmp_path / "ca.pem", **{"tls-server-name": "localhost"})
    async with client_for(path, sim.name) as client:
        await client.list_pods("default")
    cluster = json.loads((tmp_path / "info.json").read_text())["spec"]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == sim.ca_pem
    assert "certificate-authority" not in cluster
    assert cluster["tls-server-name"] == "localhost" and cluster["server"] == sim.url
