"""Kubeconfig, sim and in-cluster providers against a simulated cluster over real HTTPS."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from gateway.credentials.base import CredentialError
from gateway.credentials.factory import build_provider
from gateway.credentials.in_cluster import InClusterProvider
from gateway.domain import CredentialsRef
from gateway.sim.cluster import SimCluster
from tests.standins.probe import list_pods, sim_cluster

MASTERS = ("system:masters",)
PLUGIN = """
import json, os, sys, time
from datetime import datetime, timedelta, timezone
state = sys.argv[1]
calls = int(open(state + ".calls").read()) + 1 if os.path.exists(state + ".calls") else 1
open(state + ".calls", "w").write(str(calls))
open(state + ".info", "w").write(os.environ["KUBERNETES_EXEC_INFO"])
token = open(state + ".tokens").read().split()[calls - 1]
expiry = (datetime.now(timezone.utc) + timedelta(seconds=float(os.environ["TOKEN_SECONDS"]))).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token, "expirationTimestamp": expiry}}))
"""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    async with sim_cluster("kube-a", tmp_path) as c:
        yield c


async def test_sim_provider_uses_the_kubeconfig_the_simulator_wrote(cluster: SimCluster, tmp_path: Path) -> None:
    provider = build_provider("kube-a", CredentialsRef(source="sim"), kubeconfig_dir=tmp_path)
    try:
        assert await list_pods(provider) == 200
        assert (await provider.endpoint()).server == cluster.url
    finally:
        await provider.close()


async def test_client_certificate_user(cluster: SimCluster, tmp_path: Path) -> None:
    path = tmp_path / "cert.kubeconfig"
    path.write_text(yaml.safe_dump(cluster.kubeconfig(client=cluster.issue_client_certificate("alice", MASTERS))))
    provider = build_provider("kube-a", CredentialsRef(source="kubeconfig", params={"path": str(path)}))
    try:
        assert await provider.token() is None
        assert await list_pods(provider) == 200
        assert b"PRIVATE KEY" not in repr(await provider.endpoint()).encode()
    finally:
        await provider.close()


@pytest.mark.parametrize("inline", [True, False])
async def test_env_var_holding_inline_yaml_or_a_path(
    cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    cluster.add_static_token("static-token-1", "bob", MASTERS)
    text = yaml.safe_dump(cluster.kubeconfig(token="static-token-1"))
    (tmp_path / "env.kubeconfig").write_text(text)
    monkeypatch.setenv("PODGATE_TEST_KUBECONFIG", text if inline else str(tmp_path / "env.kubeconfig"))
    provider = build_provider(
        "kube-a", CredentialsRef(source="kubeconfig", params={"envVar": "PODGATE_TEST_KUBECONFIG"})
    )
    try:
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


async def test_rotated_static_token_is_picked_up_after_a_401(cluster: SimCluster, tmp_path: Path) -> None:
    cluster.add_static_token("old-token", "bob", MASTERS)
    path = tmp_path / "rotating.kubeconfig"
    path.write_text(yaml.safe_dump(cluster.kubeconfig(token="old-token")))
    provider = build_provider("kube-a", CredentialsRef(source="kubeconfig", params={"path": str(path)}))
    try:
        assert await list_pods(provider) == 200
        path.write_text(yaml.safe_dump(cluster.kubeconfig(token="new-token")))
        cluster.add_static_token("new-token", "bob", MASTERS)
        await asyncio.sleep(1.1)  # past the force-refresh debounce
        assert await list_pods(provider, force_refresh=True) == 200
        assert (await provider.token()).value == "new-token"
    finally:
        await provider.close()


def exec_kubeconfig(cluster: SimCluster, tmp_path: Path, tokens: list[str], seconds: float) -> Path:
    state = tmp_path / "plugin"
    state.with_suffix(".tokens").write_text("\n".join(tokens))
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN)
    doc = cluster.kubeconfig()
    doc["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script), str(state)],
            "env": [{"name": "TOKEN_SECONDS", "value": str(seconds)}],
            "provideClusterInfo": True,
            "interactiveMode": "Never",
        }
    }
    path = tmp_path / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_exec_plugin_token_honours_expiration_and_runs_once_per_refresh(
    cluster: SimCluster, tmp_path: Path
) -> None:
    tokens = [f"exec-token-{i}" for i in range(10)]
    for token in tokens:
        cluster.add_static_token(token, "carol", MASTERS)
    path = exec_kubeconfig(cluster, tmp_path, tokens, seconds=3)
    provider = build_provider("kube-a", CredentialsRef(source="kubeconfig", params={"path": str(path)}))
    calls = tmp_path / "plugin.calls"
    try:
        served = await asyncio.gather(*(provider.token() for _ in range(100)))
        assert {t.value for t in served if t is not None} == {"exec-token-0"}
        assert calls.read_text() == "1"
        info = json.loads((tmp_path / "plugin.info").read_text())
        assert info["spec"]["cluster"]["server"] == cluster.url and info["spec"]["interactive"] is False
        assert await list_pods(provider) == 200
        await asyncio.sleep(3.2)  # the plugin's token has expired: the next call waits for a new one
        assert (await provider.token()).value != "exec-token-0"
        assert await list_pods(provider) == 200
        assert calls.read_text() in ("2", "3")
    finally:
        await provider.close()


async def test_failing_exec_plugin_is_a_clear_error(cluster: SimCluster, tmp_path: Path) -> None:
    path = exec_kubeconfig(cluster, tmp_path, [], seconds=60)  # no token to hand out: IndexError, exit 1
    provider = build_provider("kube-a", CredentialsRef(source="kubeconfig", params={"path": str(path)}))
    try:
        with pytest.raises(CredentialError, match=r"exec plugin .* exited with code 1"):
            await provider.token()
    finally:
        await provider.close()


def service_account_dir(root: Path, cluster: SimCluster, token: str) -> Path:
    """The kubelet's projected volume layout: token -> ..data/token, ..data -> a timestamped directory."""
    root.mkdir()
    first = root / "..2026_01"
    first.mkdir()
    (first / "token").write_text(token)
    (first / "ca.crt").write_bytes(cluster.ca_pem)
    (first / "namespace").write_text("podgate-system")
    (root / "..data").symlink_to(first.name)
    for name in ("token", "ca.crt", "namespace"):
        (root / name).symlink_to(f"..data/{name}")
    return root


def rotate(root: Path, token: str) -> None:
    second = root / "..2026_02"
    second.mkdir()
    for name in ("ca.crt", "namespace"):
        (second / name).write_bytes((root / name).read_bytes())
    (second / "token").write_text(token)
    (root / "..data_tmp").symlink_to(second.name)
    os.replace(root / "..data_tmp", root / "..data")


async def test_in_cluster_token_rotation(cluster: SimCluster, tmp_path: Path) -> None:
    cluster.add_static_token("sa-token-1", "system:serviceaccount:podgate-system:podgate", MASTERS)
    cluster.add_static_token("sa-token-2", "system:serviceaccount:podgate-system:podgate", MASTERS)
    root = service_account_dir(tmp_path / "sa", cluster, "sa-token-1")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(cluster.port)}
    provider = build_provider("here", CredentialsRef(source="in-cluster", params={"tokenDir": str(root)}), environ=env)
    assert isinstance(provider, InClusterProvider)
    try:
        assert await provider.namespace() == "podgate-system"
        assert await list_pods(provider) == 200
        for _ in range(20):
            assert (await provider.token()).value == "sa-token-1"
        assert provider.reads == 1  # unchanged file: not re-read
        rotate(root, "sa-token-2")
        assert (await provider.token()).value == "sa-token-2"
        assert provider.reads == 2
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


async def test_in_cluster_outside_a_pod_is_a_clear_error(tmp_path: Path) -> None:
    provider = build_provider(
        "here", CredentialsRef(source="in-cluster", params={"tokenDir": str(tmp_path)}), environ={}
    )
    with pytest.raises(CredentialError, match="KUBERNETES_SERVICE_HOST"):
        await provider.endpoint()
    with pytest.raises(CredentialError, match="cannot read"):
        await provider.token()
