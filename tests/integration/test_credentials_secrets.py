"""Canary secrets: planted in every provider's configuration, they never reach a log line (DEBUG
included, SDK loggers included), an exception message or a repr — on success paths and failure paths.
Also: one cluster's broken credentials never disturb another's."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.credentials.base import CredentialError, CredentialProvider
from gateway.credentials.factory import build_provider
from gateway.domain import CredentialsRef
from gateway.sim.auth import Identity
from gateway.sim.cloud.aks import AksTokenVerifier
from gateway.sim.cloud.eks import EksTokenVerifier
from gateway.sim.cloud.gke import GkeTokenVerifier
from gateway.sim.cloud.oidc import OidcTokenVerifier
from gateway.sim.cluster import SimCluster
from tests.standins.aws import ACCOUNT, AwsStandin, moto_server
from tests.standins.entra import TENANT, EntraStandin, entra_standin
from tests.standins.google import GoogleStandin, google_standin
from tests.standins.oidc import OidcIssuer, oidc_issuer
from tests.standins.probe import list_pods, sim_cluster

AWS_KEY, AWS_SECRET = "AKIAPODGATECANARY001", "CANARY-aws-secret-access-key-e81f"
AKS_SECRET = "CANARY-aks-client-secret-47d0"
STATIC_TOKEN = "CANARY-static-kubeconfig-token-9a3c"
EXEC_SECRET = "CANARY-exec-env-secret-6b21"
OIDC_SECRET, OIDC_REFRESH = "CANARY-oidc-client-secret-2d7e", "CANARY-oidc-refresh-token-5f10"
OIDC_WRONG_SECRET = "CANARY-oidc-wrong-secret-88aa"
SA_EMAIL = "canary@podgate-test.iam.gserviceaccount.com"
ROOT = Identity("root", ("system:masters",))


class World:
    """Every stand-in and one simulated cluster that trusts all of them."""

    def __init__(
        self, aws: AwsStandin, google: GoogleStandin, entra: EntraStandin, oidc: OidcIssuer, cluster: SimCluster,
        tmp: Path,
    ):  # fmt: skip
        self.aws, self.google, self.entra, self.oidc, self.cluster, self.tmp = aws, google, entra, oidc, cluster, tmp
        self.canaries = [AWS_SECRET, AKS_SECRET, STATIC_TOKEN, EXEC_SECRET, OIDC_SECRET, OIDC_REFRESH, OIDC_WRONG_SECRET]

    def setup(self) -> None:
        c = self.cluster
        self.aws.add_key(AWS_KEY, AWS_SECRET, f"arn:aws:iam::{ACCOUNT}:user/canary")
        self.aws.create_eks_cluster(c.name, "eu-west-1", server=c.url, ca_pem=c.ca_pem)
        c.add_token_verifier(
            EksTokenVerifier(c.name, self.aws.principal, {f"arn:aws:iam::{ACCOUNT}:user/canary": ROOT})
        )
        key_file = self.google.new_service_account(SA_EMAIL, self.tmp / "sa.json")
        private_key = yaml.safe_load(key_file.read_text())["private_key"]
        self.canaries.append(private_key.splitlines()[5])  # a line of the RSA key's body
        self.google.add_cluster("p", "l", c.name, server=c.url, ca_pem=c.ca_pem)
        c.add_token_verifier(GkeTokenVerifier(self.google.token_owner, {SA_EMAIL: ROOT}))
        oid = self.entra.add_secret_app("canary-app", AKS_SECRET)
        c.add_token_verifier(AksTokenVerifier(self.entra.public_key_pem, self.entra.issuer, {oid: ROOT}))
        (self.tmp / "ca.pem").write_bytes(c.ca_pem)
        c.add_static_token(STATIC_TOKEN, "static", ("system:masters",))
        (self.tmp / "static.kubeconfig").write_text(yaml.safe_dump(c.kubeconfig(token=STATIC_TOKEN)))
        self.oidc.client_secret = OIDC_SECRET
        self.oidc.login("root", ("system:masters",), refresh_token=OIDC_REFRESH)
        c.add_token_verifier(OidcTokenVerifier(self.oidc.public_key_pem, self.oidc.url, self.oidc.client_id))
        self.write_oidc("oidc.kubeconfig", OIDC_SECRET)
        self.write_oidc("oidc-wrong.kubeconfig", OIDC_WRONG_SECRET)

    def write_oidc(self, name: str, secret: str) -> None:
        """An expired id-token, so the first use refreshes it at the issuer with the secret and refresh token."""
        config = {
            "idp-issuer-url": self.oidc.url, "client-id": self.oidc.client_id, "client-secret": secret,
            "refresh-token": OIDC_REFRESH, "id-token": self.oidc.id_token("root", lifetime=-60),
            "idp-certificate-authority": str(self.tmp / "oidc-ca.pem"),
        }  # fmt: skip
        doc = self.cluster.kubeconfig()
        doc["users"][0]["user"] = {"auth-provider": {"name": "oidc", "config": config}}
        (self.tmp / name).write_text(yaml.safe_dump(doc))

    def refs(self) -> dict[str, CredentialsRef]:
        return {
            "eks": CredentialsRef(
                source="eks",
                params={"clusterName": self.cluster.name, "region": "eu-west-1", "eksEndpointUrl": self.aws.url},
            ),
            "gke": CredentialsRef(
                source="gke",
                params={
                    "project": "p",
                    "location": "l",
                    "clusterName": self.cluster.name,
                    "keyFile": str(self.tmp / "sa.json"),
                    "containerEndpointUrl": self.google.url,
                },
            ),
            "aks": CredentialsRef(source="aks", params=self.aks_params("PODGATE_CANARY_AKS_SECRET")),
            "kubeconfig": CredentialsRef(source="kubeconfig", params={"path": str(self.tmp / "static.kubeconfig")}),
            "oidc": CredentialsRef(source="kubeconfig", params={"path": str(self.tmp / "oidc.kubeconfig")}),
        }

    def aks_params(self, secret_env: str) -> dict[str, str]:
        return {
            "tenantId": TENANT,
            "clientId": "canary-app",
            "clientSecretEnv": secret_env,
            "authorityHost": self.entra.url,
            "authorityCaFile": str(self.entra.ca_file),
            "server": self.cluster.url,
            "caFile": str(self.tmp / "ca.pem"),
        }

    def broken_refs(self) -> dict[str, CredentialsRef]:
        exec_doc = self.cluster.kubeconfig()
        exec_doc["users"][0]["user"] = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": ["-c", "import os, sys; sys.stderr.write('denied for ' + os.environ['SECRET']); sys.exit(3)"],
                "env": [{"name": "SECRET", "value": EXEC_SECRET}],
            }
        }
        (self.tmp / "exec.kubeconfig").write_text(yaml.safe_dump(exec_doc))
        bad_server = self.cluster.kubeconfig(token=STATIC_TOKEN)
        bad_server["clusters"][0]["cluster"]["server"] = "http://plaintext.example"
        (self.tmp / "bad.kubeconfig").write_text(yaml.safe_dump(bad_server))
        return {
            "eks-missing": CredentialsRef(
                source="eks", params={"clusterName": "missing", "region": "eu-west-1", "eksEndpointUrl": self.aws.url}
            ),
            "aks-wrong-secret": CredentialsRef(source="aks", params=self.aks_params("PODGATE_CANARY_WRONG_SECRET")),
            "exec-failing": CredentialsRef(source="kubeconfig", params={"path": str(self.tmp / "exec.kubeconfig")}),
            "kubeconfig-http": CredentialsRef(source="kubeconfig", params={"path": str(self.tmp / "bad.kubeconfig")}),
            "oidc-wrong-secret": CredentialsRef(
                source="kubeconfig", params={"path": str(self.tmp / "oidc-wrong.kubeconfig")}
            ),
        }


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsStandin]:
    with moto_server() as standin:
        yield standin


@pytest.fixture
async def world(aws: AwsStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("PODGATE_CANARY_AKS_SECRET", AKS_SECRET)
    monkeypatch.setenv("PODGATE_CANARY_WRONG_SECRET", "CANARY-wrong-aks-secret-1c9e")
    async with (
        google_standin() as google,
        entra_standin(tmp_path) as entra,
        oidc_issuer(tmp_path) as oidc,
        sim_cluster("canary", tmp_path) as cluster,
    ):
        w = World(aws, google, entra, oidc, cluster, tmp_path)
        w.canaries.append("CANARY-wrong-aks-secret-1c9e")
        w.setup()
        yield w


async def exercise(provider: CredentialProvider) -> list[Any]:
    """Everything a caller could see of a provider: statuses, errors, endpoint and token values' reprs."""
    seen: list[Any] = [repr(provider)]
    try:
        seen.append(await list_pods(provider))
        token = await provider.token(force_refresh=True)
        seen += [repr(token), str(token), repr(await provider.endpoint())]
    except CredentialError as exc:
        seen += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
    return seen


async def test_canaries_never_leak(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    providers = {name: build_provider(name, ref) for name, ref in {**world.refs(), **world.broken_refs()}.items()}
    try:
        seen = {name: await exercise(p) for name, p in providers.items()}
        issued = [t.value for p in providers.values() for t in [p_token(p)] if t]
    finally:
        for p in providers.values():
            await p.close()
    for name in world.refs():
        assert seen[name][1] == 200, (name, seen[name])
    for name in world.broken_refs():
        assert any("CredentialError" in str(s) for s in seen[name]), (name, seen[name])
    loggers = {r.name.split(".")[0] for r in caplog.records}
    assert {"botocore", "gateway"} <= loggers, loggers  # SDK debug logs were captured too
    text = "\n".join(map(str, [caplog.text, *[s for v in seen.values() for s in v]]))
    assert len(world.canaries) == 9
    for canary in world.canaries:
        assert canary not in text, canary
    for token in issued:
        assert token not in caplog.text


def p_token(provider: CredentialProvider) -> Any:
    cache = getattr(provider, "token_cache", None)
    return getattr(cache, "_token", None)


async def test_broken_clusters_never_disturb_a_working_one(world: World) -> None:
    good = build_provider("good", world.refs()["eks"])
    broken = [build_provider(name, ref) for name, ref in world.broken_refs().items()]
    try:

        async def poke(p: CredentialProvider) -> object:
            try:
                return await list_pods(p)
            except CredentialError as exc:
                return exc

        rounds = await asyncio.gather(*(poke(p) for _ in range(10) for p in [good, *broken]))
        good_results = rounds[:: len(broken) + 1]
        assert good_results == [200] * 10
        assert all(isinstance(r, CredentialError) for i, r in enumerate(rounds) if i % (len(broken) + 1))
    finally:
        for p in [good, *broken]:
            await p.close()
