"""AKS end to end: an Entra ID stand-in over TLS with its own CA (and ARM), the simulator playing the AKS cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clusters.kubeapi.client import ClusterClient
from gateway.credentials.base import CredentialError
from gateway.credentials.factory import build_provider
from gateway.domain import CredentialsRef
from gateway.sim.auth import Identity
from gateway.sim.cloud.aks import AksTokenVerifier
from gateway.sim.cluster import SimCluster
from tests.standins.entra import TENANT, EntraStandin, entra_standin
from tests.standins.probe import list_pods, sim_cluster

CLIENT_ID = "5f1c8a52-podgate-dispatcher"
CLIENT_SECRET = "CANARY-entra-client-secret-0b7e"
WORKLOAD_CLIENT_ID = "7a2d0c33-podgate-workload"
FEDERATED_TOKEN = "eyJhbGciOiJSUzI1NiJ9.CANARY-federated-assertion.sig"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"


@pytest.fixture
async def entra(tmp_path: Path) -> AsyncIterator[EntraStandin]:
    async with entra_standin(tmp_path) as standin:
        yield standin


@pytest.fixture
async def aks_cluster(entra: EntraStandin, tmp_path: Path) -> AsyncIterator[SimCluster]:
    async with sim_cluster("aks-weu", tmp_path) as cluster:
        users = {
            entra.add_secret_app(CLIENT_ID, CLIENT_SECRET): Identity(CLIENT_ID, ("system:masters",)),
            entra.add_federated_app(WORKLOAD_CLIENT_ID, FEDERATED_TOKEN): Identity(
                WORKLOAD_CLIENT_ID, ("system:masters",)
            ),
        }
        cluster.add_token_verifier(AksTokenVerifier(entra.public_key_pem, entra.issuer, users))
        entra.add_cluster(SUBSCRIPTION, "rg-weu", "aks-weu", server=cluster.url, ca_pem=cluster.ca_pem)
        (tmp_path / "aks-ca.pem").write_bytes(cluster.ca_pem)
        yield cluster


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODGATE_AKS_CLIENT_SECRET", CLIENT_SECRET)


def aks_ref(entra: EntraStandin, tmp_path: Path, cluster: SimCluster | None, **extra: str) -> CredentialsRef:
    params = {
        "tenantId": TENANT,
        "authorityHost": entra.url,
        "authorityCaFile": str(entra.ca_file),
        **({"server": cluster.url, "caFile": str(tmp_path / "aks-ca.pem")} if cluster else {}),
        **extra,
    }
    return CredentialsRef(source="aks", params=params)


@pytest.mark.usefixtures("secret_env")
async def test_client_secret_with_configured_server(
    entra: EntraStandin, aks_cluster: SimCluster, tmp_path: Path
) -> None:
    ref = aks_ref(entra, tmp_path, aks_cluster, clientId=CLIENT_ID, clientSecretEnv="PODGATE_AKS_CLIENT_SECRET")
    provider = build_provider("aks-weu", ref)
    try:
        assert await list_pods(provider) == 200
        token = await provider.token()
        assert token is not None and token.expires_at is not None
    finally:
        await provider.close()


@pytest.mark.usefixtures("secret_env")
async def test_endpoint_from_arm_list_cluster_user_credential(
    entra: EntraStandin, aks_cluster: SimCluster, tmp_path: Path
) -> None:
    ref = aks_ref(
        entra,
        tmp_path,
        None,
        clientId=CLIENT_ID,
        clientSecretEnv="PODGATE_AKS_CLIENT_SECRET",
        subscriptionId=SUBSCRIPTION,
        resourceGroup="rg-weu",
        clusterName="aks-weu",
        armEndpointUrl=entra.url,
    )
    provider = build_provider("aks-weu", ref)
    try:
        endpoint = await provider.endpoint()
        assert endpoint.server == aks_cluster.url and endpoint.ca_data == aks_cluster.ca_pem
        assert entra.arm_requests == 1
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


async def test_workload_identity(entra: EntraStandin, aks_cluster: SimCluster, tmp_path: Path) -> None:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(FEDERATED_TOKEN)
    ref = aks_ref(
        entra,
        tmp_path,
        aks_cluster,
        credential="workloadIdentity",
        clientId=WORKLOAD_CLIENT_ID,
        tokenFile=str(token_file),
    )
    provider = build_provider("aks-weu", ref)
    try:
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


async def test_managed_identity_through_the_identity_endpoint(
    entra: EntraStandin, aks_cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = entra.add_managed_identity("podgate-mi")
    aks_cluster.add_token_verifier(
        AksTokenVerifier(entra.public_key_pem, entra.issuer, {oid: Identity("podgate-mi", ("system:masters",))})
    )
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{entra.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", entra.identity_header)
    ref = aks_ref(entra, tmp_path, aks_cluster, credential="managedIdentity", clientId="podgate-mi")
    provider = build_provider("aks-weu", ref)
    try:
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


async def test_default_azure_credential_from_the_environment(
    entra: EntraStandin, aks_cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_CLIENT_SECRET": CLIENT_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    provider = build_provider("aks-weu", aks_ref(entra, tmp_path, aks_cluster, credential="default"))
    try:
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


async def test_hundred_concurrent_callers_cause_one_token_request(
    entra: EntraStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODGATE_AKS_CLIENT_SECRET", CLIENT_SECRET)
    entra.add_secret_app(CLIENT_ID, CLIENT_SECRET)
    ref = aks_ref(
        entra,
        tmp_path,
        None,
        clientId=CLIENT_ID,
        clientSecretEnv="PODGATE_AKS_CLIENT_SECRET",
        server="https://127.0.0.1:1",
    )
    provider = build_provider("aks-weu", ref)
    try:
        tokens = await asyncio.gather(*(provider.token() for _ in range(100)))
        assert len({t.value for t in tokens if t is not None}) == 1
        assert entra.token_requests == 1
    finally:
        await provider.close()


async def test_wrong_secret_is_refused_without_quoting_it(
    entra: EntraStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entra.add_secret_app(CLIENT_ID, CLIENT_SECRET)
    monkeypatch.setenv("PODGATE_AKS_CLIENT_SECRET", "CANARY-wrong-secret-55aa")
    ref = aks_ref(
        entra,
        tmp_path,
        None,
        clientId=CLIENT_ID,
        clientSecretEnv="PODGATE_AKS_CLIENT_SECRET",
        server="https://127.0.0.1:1",
    )
    provider = build_provider("aks-weu", ref)
    try:
        with pytest.raises(CredentialError, match="cluster 'aks-weu': token refresh failed") as caught:
            await provider.token()
        assert "CANARY" not in str(caught.value)
    finally:
        await provider.close()


async def test_cloud_identity_is_judged_by_the_clusters_rbac(
    entra: EntraStandin, aks_cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid token of a principal the cluster maps without permissions: authenticated, then forbidden."""
    oid = entra.add_secret_app("reader-app", "reader-secret")
    aks_cluster.add_token_verifier(AksTokenVerifier(entra.public_key_pem, entra.issuer, {oid: Identity("reader")}))
    monkeypatch.setenv("PODGATE_READER_SECRET", "reader-secret")
    ref = aks_ref(entra, tmp_path, aks_cluster, clientId="reader-app", clientSecretEnv="PODGATE_READER_SECRET")
    provider = build_provider("aks-weu", ref)
    try:
        assert await list_pods(provider) == 403
    finally:
        await provider.close()


@pytest.mark.usefixtures("secret_env")
async def test_after_rotate_certs_the_client_asks_arm_again_and_goes_on(
    entra: EntraStandin, aks_cluster: SimCluster, tmp_path: Path
) -> None:
    """`az aks rotate-certs`: a new CA. The ClusterClient's TLS fails, it asks the provider for the endpoint
    again, which calls listClusterUserCredential again and gets the new CA: no restart."""
    ref = aks_ref(
        entra, tmp_path, None, clientId=CLIENT_ID, clientSecretEnv="PODGATE_AKS_CLIENT_SECRET",
        subscriptionId=SUBSCRIPTION, resourceGroup="rg-weu", clusterName="aks-weu", armEndpointUrl=entra.url,
    )  # fmt: skip
    provider = build_provider("aks-weu", ref)
    provider.endpoint_refresh_interval = 1.0  # type: ignore[attr-defined]  # a cloud provider waits 30 s
    try:
        async with ClusterClient(provider) as client:
            await client.list_pods("default")
            await asyncio.sleep(1.1)  # past the provider's endpoint-lookup debounce, shortened from 30 s
            await aks_cluster.rotate_certificates()
            entra.add_cluster(SUBSCRIPTION, "rg-weu", "aks-weu", server=aks_cluster.url, ca_pem=aks_cluster.ca_pem)
            assert (await client.list_pods("default")).items == ()
        assert entra.arm_requests == 2
    finally:
        await provider.close()
