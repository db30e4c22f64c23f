"""GKE end to end: a local OAuth token endpoint and container API, the simulator playing the GKE cluster."""

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
from gateway.sim.cloud.gke import GkeTokenVerifier
from gateway.sim.cluster import SimCluster
from tests.standins.google import GoogleStandin, google_standin
from tests.standins.probe import list_pods, sim_cluster

DISPATCHER = "dispatcher@podgate-test.iam.gserviceaccount.com"
DEPLOYER = "deployer@podgate-test.iam.gserviceaccount.com"
USERS = {DISPATCHER: Identity(DISPATCHER, ("system:masters",)), DEPLOYER: Identity(DEPLOYER, ("system:masters",))}


@pytest.fixture
async def google() -> AsyncIterator[GoogleStandin]:
    async with google_standin() as standin:
        yield standin


@pytest.fixture
async def gke_cluster(google: GoogleStandin, tmp_path: Path) -> AsyncIterator[SimCluster]:
    async with sim_cluster("gke-eu", tmp_path) as cluster:
        google.add_cluster("podgate-test", "europe-west4", "gke-eu", server=cluster.url, ca_pem=cluster.ca_pem)
        cluster.add_token_verifier(GkeTokenVerifier(google.token_owner, USERS))
        yield cluster


def gke_ref(google: GoogleStandin, **extra: str) -> CredentialsRef:
    params = {
        "project": "podgate-test",
        "location": "europe-west4",
        "clusterName": "gke-eu",
        "containerEndpointUrl": google.url,
        **extra,
    }
    return CredentialsRef(source="gke", params=params)


async def test_service_account_key_file(google: GoogleStandin, gke_cluster: SimCluster, tmp_path: Path) -> None:
    key = google.new_service_account(DISPATCHER, tmp_path / "sa.json")
    provider = build_provider("gke-eu", gke_ref(google, keyFile=str(key)))
    try:
        endpoint = await provider.endpoint()
        assert endpoint.server == gke_cluster.url and endpoint.ca_data == gke_cluster.ca_pem
        assert await list_pods(provider) == 200
        assert google.token_requests == 1  # the endpoint lookup used the cached token
    finally:
        await provider.close()


async def test_application_default_credentials(
    google: GoogleStandin, gke_cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = google.new_service_account(DISPATCHER, tmp_path / "adc.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    provider = build_provider("gke-eu", gke_ref(google))
    try:
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


async def test_impersonated_service_account(google: GoogleStandin, gke_cluster: SimCluster, tmp_path: Path) -> None:
    key = google.new_service_account(DISPATCHER, tmp_path / "sa.json")
    google.allow_impersonation(DISPATCHER, DEPLOYER)
    ref = gke_ref(google, keyFile=str(key), impersonateServiceAccount=DEPLOYER, iamCredentialsEndpointUrl=google.url)
    provider = build_provider("gke-eu", ref)
    try:
        assert await list_pods(provider) == 200
        token = await provider.token()
        assert token is not None and google.token_owner(token.value) == DEPLOYER
        assert google.impersonation_requests == 1
    finally:
        await provider.close()


async def test_impersonation_not_granted_is_a_clear_error(google: GoogleStandin, tmp_path: Path) -> None:
    key = google.new_service_account(DISPATCHER, tmp_path / "sa.json")
    ref = gke_ref(google, keyFile=str(key), impersonateServiceAccount=DEPLOYER, iamCredentialsEndpointUrl=google.url)
    provider = build_provider("gke-eu", ref)
    try:
        with pytest.raises(CredentialError, match="cluster 'gke-eu': token refresh failed: RefreshError"):
            await provider.token()
    finally:
        await provider.close()


async def test_short_lived_tokens_are_refreshed_before_expiry_without_a_failed_request(
    google: GoogleStandin, gke_cluster: SimCluster, tmp_path: Path
) -> None:
    google.lifetime_seconds = 5  # margin min(300, 5/4): the successor is fetched in the token's last 1.25 s
    key = google.new_service_account(DISPATCHER, tmp_path / "sa.json")
    provider = build_provider("gke-eu", gke_ref(google, keyFile=str(key)))
    try:
        statuses, tokens = [], set()
        for _ in range(26):  # ~6.5 s: past the first token's expiry
            statuses.append(await list_pods(provider))
            tokens.add((await provider.token()).value)
            await asyncio.sleep(0.25)
        assert set(statuses) == {200}
        assert len(tokens) == 2
        assert google.token_requests == 2
    finally:
        await provider.close()


async def test_hundred_concurrent_callers_cause_one_token_request(google: GoogleStandin, tmp_path: Path) -> None:
    key = google.new_service_account(DISPATCHER, tmp_path / "sa.json")
    provider = build_provider("gke-eu", gke_ref(google, keyFile=str(key)))
    try:
        tokens = await asyncio.gather(*(provider.token() for _ in range(100)))
        assert len({t.value for t in tokens if t is not None}) == 1
        assert google.token_requests == 1
        forced = await asyncio.gather(*(provider.token(force_refresh=True) for _ in range(100)))
        assert len({t.value for t in forced if t is not None}) == 1
        assert google.token_requests == 1  # a burst of 401s right after a refresh: no new request
    finally:
        await provider.close()


async def test_key_for_unknown_account_is_refused_by_the_token_endpoint(google: GoogleStandin, tmp_path: Path) -> None:
    other = GoogleStandin(url=google.url)  # a key the stand-in never registered
    key = other.new_service_account("stranger@podgate-test.iam.gserviceaccount.com", tmp_path / "sa.json")
    provider = build_provider("gke-eu", gke_ref(google, keyFile=str(key)))
    try:
        with pytest.raises(CredentialError, match="invalid_grant"):
            await provider.token()
    finally:
        await provider.close()


async def test_revoked_token_is_refreshed_once_by_the_api_client(
    google: GoogleStandin, gke_cluster: SimCluster, tmp_path: Path
) -> None:
    """Through the gateway's Kubernetes client: a 401 makes it force one refresh and retry."""
    key = google.new_service_account(DISPATCHER, tmp_path / "sa.json")
    provider = build_provider("gke-eu", gke_ref(google, keyFile=str(key)))
    try:
        async with ClusterClient(provider) as client:
            assert (await client.get_version())["gitVersion"]
            await asyncio.sleep(1.1)  # past the force-refresh debounce
            google.revoke_all()
            before = google.token_requests
            pods = await asyncio.gather(*(client.list_pods("default") for _ in range(20)))
            assert all(len(p.items) == 0 for p in pods)
            assert google.token_requests == before + 1
    finally:
        await provider.close()
