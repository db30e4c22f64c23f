"""Who the API server sees: impersonation, exec plugins returning client certificates (with expiry) and
`auth-provider: oidc` with refresh at an issuer, each against a simulated cluster over real HTTPS."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clusters import kubeapi as k
from gateway.clusters.kubeapi.errors import Forbidden
from gateway.credentials.base import CredentialError, Endpoint
from gateway.credentials.static import StaticProvider
from gateway.sim.cloud.oidc import OidcTokenVerifier
from gateway.sim.cluster import SimCluster
from gateway.sim.config import SimClusterSpec, UserSpec
from tests.integration.kubeconfig_helpers import client_for, whoami, write_kubeconfig
from tests.standins.oidc import OidcIssuer, oidc_issuer

MASTERS = ("system:masters",)
USERS = (
    UserSpec(name="deployer", token="deployer-token", verbs=("impersonate",)),  # may only impersonate
    UserSpec(name="bystander", token="bystander-token", verbs=("get", "list")),  # may not impersonate
    UserSpec(name="alice", token="alice-token", namespaces=("default",), resources=("pods",), verbs=("list",)),
)
CERT_PLUGIN = """
import base64, json, os, sys
from datetime import datetime, timedelta, timezone
state = sys.argv[1]
calls = int(open(state + ".calls").read()) + 1 if os.path.exists(state + ".calls") else 1
open(state + ".calls", "w").write(str(calls))
cert, key = (open(f"{state}.{calls - 1}.{part}").read() for part in ("crt", "key"))
expiry = (datetime.now(timezone.utc) + timedelta(seconds=float(os.environ["CERT_SECONDS"]))).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"clientCertificateData": cert, "clientKeyData": key, "expirationTimestamp": expiry}}))
"""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    c = SimCluster(SimClusterSpec(name="kube-a", users=USERS), kubeconfig_dir=tmp_path, node_side=False)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def test_impersonation_sends_every_impersonate_header_and_runs_as_that_identity(
    cluster: SimCluster, tmp_path: Path
) -> None:
    user = {
        "token": "deployer-token",
        "as": "alice",
        "as-uid": "uid-1234",
        "as-groups": ["team-a", "oncall"],
        "as-user-extra": {"reason.example.com/ticket": ["OPS-1", "OPS-2"], "scopes": ["view"]},
    }
    async with client_for(write_kubeconfig(cluster, tmp_path / "as.kubeconfig", user)) as client:
        seen = await whoami(client)
        assert seen == {
            "username": "alice",
            "uid": "uid-1234",
            "groups": ["team-a", "oncall", "system:authenticated"],
            "extra": {"reason.example.com/ticket": ["OPS-1", "OPS-2"], "scopes": ["view"]},
        }
        await client.list_pods("default")  # alice may list pods; the deployer itself may not
        assert cluster.faults.log[-1].user == "alice" and cluster.faults.log[-1].code == 200
        with pytest.raises(Forbidden, match='User "alice" cannot list resource "pods"'):
            await client.list_pods("kube-system")


async def test_impersonation_needs_the_impersonate_verb(cluster: SimCluster, tmp_path: Path) -> None:
    user = {"token": "bystander-token", "as": "alice"}
    async with client_for(write_kubeconfig(cluster, tmp_path / "as.kubeconfig", user)) as client:
        with pytest.raises(Forbidden, match='User "bystander" cannot impersonate resource "users"'):
            await client.list_pods("default")


async def test_a_role_binding_may_grant_impersonating_the_service_accounts_of_one_namespace(
    cluster: SimCluster, tmp_path: Path
) -> None:
    role = {"metadata": {"name": "sa-impersonator"}, "rules": [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}]}  # fmt: skip
    async with client_for_admin(cluster) as admin:
        await admin.ensure_object(k.ROLES, "default", role)
        await bind(admin, "bystander-impersonates", ("Role", "sa-impersonator"), ("User", "bystander"))
    runner = {"token": "bystander-token", "as": "system:serviceaccount:default:runner"}
    async with client_for(write_kubeconfig(cluster, tmp_path / "sa.kubeconfig", runner)) as client:
        seen = await whoami(client)
    assert seen["username"] == "system:serviceaccount:default:runner"
    assert seen["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
    elsewhere = {"token": "bystander-token", "as": "system:serviceaccount:kube-system:runner"}
    async with client_for(write_kubeconfig(cluster, tmp_path / "sa2.kubeconfig", elsewhere)) as client:
        with pytest.raises(Forbidden, match='cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system"'):
            await whoami(client)


def cert_plugin_kubeconfig(cluster: SimCluster, tmp_path: Path, users: list[str], seconds: float) -> Path:
    state = tmp_path / "certs"
    for i, name in enumerate(users):
        pair = cluster.issue_client_certificate(name, MASTERS)
        Path(f"{state}.{i}.crt").write_bytes(pair.cert_pem)
        Path(f"{state}.{i}.key").write_bytes(pair.key_pem)
    script = tmp_path / "cert-plugin.py"
    script.write_text(CERT_PLUGIN)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(script), str(state)],
            "env": [{"name": "CERT_SECONDS", "value": str(seconds)}],
        }
    }
    return write_kubeconfig(cluster, tmp_path / "exec-cert.kubeconfig", user)


async def test_exec_plugin_client_certificate_is_used_and_renewed_when_it_expires(
    cluster: SimCluster, tmp_path: Path
) -> None:
    path = cert_plugin_kubeconfig(cluster, tmp_path, ["tsh-user-1", "tsh-user-2", "tsh-user-3"], seconds=3)
    calls = tmp_path / "certs.calls"
    async with client_for(path) as client:
        assert await client._provider.token() is None  # no bearer token: the certificate authenticates
        first = await asyncio.gather(*(whoami(client) for _ in range(20)))
        assert {u["username"] for u in first} == {"tsh-user-1"}
        assert calls.read_text() == "1"
        assert b"PRIVATE KEY" not in repr(await client._provider.endpoint()).encode()
        await asyncio.sleep(3.2)  # the certificate the plugin handed out has expired: the plugin runs again
        assert (await whoami(client))["username"] == "tsh-user-2"
        assert calls.read_text() == "2"


async def oidc_kubeconfig(
    cluster: SimCluster, issuer: OidcIssuer, tmp_path: Path, *, lifetime: int, refresh_token: str = ""
) -> Path:
    id_token, refresh = issuer.login("alice", ("oidc:ops",), lifetime=lifetime)
    config = {
        "client-id": issuer.client_id,
        "client-secret": issuer.client_secret,
        "id-token": id_token,
        "refresh-token": refresh_token or refresh,
        "idp-issuer-url": issuer.url,
        "idp-certificate-authority": "oidc-ca.pem",  # relative to the kubeconfig, as oc/kubectl write it
    }
    path = write_kubeconfig(cluster, tmp_path / "oidc.kubeconfig", {"auth-provider": {"name": "oidc", "config": config}})
    async with client_for_admin(cluster) as admin:
        await bind(admin, "ops-view", ("ClusterRole", "view"), ("Group", "oidc:ops"))
    return path


async def bind(admin: k.ClusterClient, name: str, role: tuple[str, str], subject: tuple[str, str]) -> None:
    """A RoleBinding in `default` of `role` (kind, name) to `subject` (kind, name)."""
    group = "rbac.authorization.k8s.io"
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": group, "kind": role[0], "name": role[1]},
        "subjects": [{"kind": subject[0], "name": subject[1], "apiGroup": group}],
    }
    await admin.ensure_object(k.ROLE_BINDINGS, "default", binding)


def client_for_admin(cluster: SimCluster) -> k.ClusterClient:
    endpoint = Endpoint(server=cluster.url, ca_data=cluster.ca_pem)
    return k.ClusterClient(StaticProvider(cluster.name, endpoint, cluster.admin_token))


@pytest.fixture
async def issuer(cluster: SimCluster, tmp_path: Path) -> AsyncIterator[OidcIssuer]:
    async with oidc_issuer(tmp_path) as found:
        cluster.add_token_verifier(OidcTokenVerifier(found.public_key_pem, found.url, found.client_id))
        yield found


async def test_oidc_id_token_is_used_then_refreshed_at_the_issuer_when_it_expires(
    cluster: SimCluster, issuer: OidcIssuer, tmp_path: Path
) -> None:
    issuer.rotate_refresh_tokens = True  # each refresh token works once: the rotated one must be kept
    path = await oidc_kubeconfig(cluster, issuer, tmp_path, lifetime=13)
    written = path.read_bytes()
    async with client_for(path) as client:
        assert (await whoami(client))["username"] == f"{issuer.url}#alice"
        await client.list_pods("default")
        assert issuer.refreshes == 0  # the kubeconfig's id-token was still good
        first = (await client._provider.token()).value
        await asyncio.sleep(3.5)  # within 10 s of expiry the id-token is refreshed, as client-go does
        await client.list_pods("default")
        assert issuer.refreshes == 1
        assert (await client._provider.token()).value != first
        await asyncio.sleep(1.1)
        await client._provider.token(force_refresh=True)  # as after a 401: refresh again, with the rotated token
        assert issuer.refreshes == 2 and issuer.refusals == []
        assert (await whoami(client))["groups"] == ["oidc:ops", "system:authenticated"]
    assert path.read_bytes() == written  # nothing is written back to the user's kubeconfig


async def test_an_expired_oidc_session_is_a_clear_error_without_secrets(
    cluster: SimCluster, issuer: OidcIssuer, tmp_path: Path
) -> None:
    path = await oidc_kubeconfig(cluster, issuer, tmp_path, lifetime=-60, refresh_token="spent-refresh-token")
    async with client_for(path) as client:
        with pytest.raises(CredentialError, match=r"oidc refresh failed: .*HTTP 400: invalid_grant") as caught:
            await client.list_pods("default")
    assert issuer.refusals == ["invalid_grant"]
    assert "spent-refresh-token" not in str(caught.value) and issuer.client_secret not in str(caught.value)
