"""GKE end to end: a local OAuth token endpoint, STS, IAM Credentials and container API, the simulator
playing the GKE cluster; every credential file type Google issues."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from google.oauth2 import credentials as user_credentials

from gateway.clusters.kubeapi.client import ClusterClient
from gateway.credentials import gke as gke_credentials
from gateway.credentials.base import CredentialError
from gateway.credentials.factory import build_provider
from gateway.domain import CredentialsRef
from gateway.sim.auth import Identity
from gateway.sim.cloud.gke import GkeTokenVerifier
from gateway.sim.cluster import SimCluster
from tests.standins.google import AWS_SUBJECT, GoogleStandin, google_standin
from tests.standins.probe import list_pods, sim_cluster

DISPATCHER = "dispatcher@podgate-test.iam.gserviceaccount.com"
DEPLOYER = "deployer@podgate-test.iam.gserviceaccount.com"
ENGINEER = "engineer@example.com"
POOL = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/podgate/providers/ci"
CI_PRINCIPAL = "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/podgate/subject/ci"
AWS_PRINCIPAL = "principalSet://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/podgate/aws-role"
EXEC_PRINCIPAL = "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/podgate/subject/exec"
USERS = {u: Identity(u, ("system:masters",)) for u in (DISPATCHER, DEPLOYER, ENGINEER, CI_PRINCIPAL, AWS_PRINCIPAL)}


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
        loop = asyncio.get_running_loop()
        statuses = [await list_pods(provider)]
        tokens = {(await provider.token()).value}
        first_expired = loop.time() + google.lifetime_seconds + 1.0  # the first token, fetched above, is dead by
        # Calls every 0.25 s until past the first token's expiry (how many: however long they take under load).
        while loop.time() < first_expired:
            statuses.append(await list_pods(provider))
            tokens.add((await provider.token()).value)
            await asyncio.sleep(0.25)
        assert set(statuses) == {200}
        assert len(tokens) >= 2  # renewed (a slow run may outlive the second token too)
        assert google.token_requests == len(tokens)  # each fetch in time for its use, none wasted
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

# --- every credential file type (decision 0011) ------------------------------------------------
# service account, workload identity federation from a file, from AWS (a SigV4-signed GetCallerIdentity,
# checked by the stand-in's STS) and from an executable (then impersonating), impersonated_service_account.
# An `authorized_user` file cannot be sent to a stand-in: google-auth always refreshes it at
# oauth2.googleapis.com, whatever its token_uri says (a deliberate pin), so only its loading is checked.

def federation(google: GoogleStandin, subject_type: str, source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "external_account", "audience": POOL, "subject_token_type": subject_type,
            "token_url": google.sts_url, "credential_source": source, **extra}  # fmt: skip


def service_account(google: GoogleStandin, tmp_path: Path) -> tuple[dict[str, Any], str]:
    path = google.new_service_account(DISPATCHER, tmp_path / "sa-source.json")
    return json.loads(path.read_text()), DISPATCHER


def from_a_file(google: GoogleStandin, tmp_path: Path) -> tuple[dict[str, Any], str]:
    subject = tmp_path / "oidc-token"
    subject.write_text("eyJ.ci-subject-token.sig")
    google.trust_subject_token("eyJ.ci-subject-token.sig", CI_PRINCIPAL)
    return federation(google, "urn:ietf:params:oauth:token-type:jwt", {"file": str(subject)}), CI_PRINCIPAL


def from_aws(google: GoogleStandin, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """What `gcloud iam workload-identity-pools create-cred-config --aws` writes; the AWS key comes from the
    environment (set by the test), as on Lambda or with an IRSA-less EC2 role exported by the runtime."""
    google.trust_aws_key("AKIASTANDIN000000001", "standin-secret-key", AWS_PRINCIPAL)
    source = {
        "environment_id": "aws1",
        "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
        "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
    }
    return federation(google, AWS_SUBJECT, source), AWS_PRINCIPAL


def from_an_executable(google: GoogleStandin, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """An executable-sourced federation that then impersonates a service account (the usual shape)."""
    google.trust_subject_token("exec-subject-token", EXEC_PRINCIPAL)
    google.allow_impersonation(EXEC_PRINCIPAL, DEPLOYER)
    answer = {"version": 1, "success": True, "token_type": "urn:ietf:params:oauth:token-type:id_token",
              "id_token": "exec-subject-token", "expiration_time": int(time.time()) + 3600}  # fmt: skip
    script = tmp_path / "subject-token.sh"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{json.dumps(answer)}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    source = {"executable": {"command": str(script), "timeout_millis": 5000}}
    impersonate = {"service_account_impersonation_url": google.impersonation_url(DEPLOYER)}
    return federation(google, "urn:ietf:params:oauth:token-type:id_token", source, **impersonate), DEPLOYER


def impersonated(google: GoogleStandin, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """`gcloud auth application-default login --impersonate-service-account`'s file."""
    source, caller = service_account(google, tmp_path)
    google.allow_impersonation(caller, DEPLOYER)
    return {"type": "impersonated_service_account", "service_account_impersonation_url":
            google.impersonation_url(DEPLOYER), "source_credentials": source, "delegates": []}, DEPLOYER  # fmt: skip


KINDS: dict[str, Callable[[GoogleStandin, Path], tuple[dict[str, Any], str]]] = {
    "service_account": service_account,
    "external_account-file": from_a_file,
    "external_account-aws": from_aws,
    "external_account-executable": from_an_executable,
    "impersonated_service_account": impersonated,
}


def test_an_authorized_user_file_loads_as_user_credentials_with_its_refresh_token(tmp_path: Path) -> None:
    document = GoogleStandin(url="http://127.0.0.1:9").new_authorized_user(ENGINEER)
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(document))
    loaded = gke_credentials._from_key_file(str(path))
    assert isinstance(loaded, user_credentials.Credentials)
    assert loaded.refresh_token == document["refresh_token"] and loaded.client_id == document["client_id"]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_credential_file_type_reaches_the_cluster_as_its_identity(
    kind: str, google: GoogleStandin, gke_cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTANDIN000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "standin-secret-key")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    document, identity = KINDS[kind](google, tmp_path)
    key_file = tmp_path / "credentials.json"
    key_file.write_text(json.dumps(document))
    params = {"project": "podgate-test", "location": "europe-west4", "clusterName": "gke-eu",
              "containerEndpointUrl": google.url, "keyFile": str(key_file)}  # fmt: skip
    provider = build_provider("gke-eu", CredentialsRef(source="gke", params=params))
    try:
        async with ClusterClient(provider) as client:
            assert (await client.list_pods("default")).items == ()
        assert gke_cluster.faults.log[-1].user == identity
        if kind.startswith("external_account"):
            assert google.sts_requests == 1
    finally:
        await provider.close()


async def test_an_aws_request_signed_with_the_wrong_secret_is_refused_by_sts(
    google: GoogleStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in really checks the SigV4 signature (else the AWS case above would prove little)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASTANDIN000000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    document, _ = from_aws(google, tmp_path)
    key_file = tmp_path / "aws.json"
    key_file.write_text(json.dumps(document))
    params = {"project": "p", "location": "l", "containerEndpointUrl": google.url, "keyFile": str(key_file)}
    provider = build_provider("gke-eu", CredentialsRef(source="gke", params=params))
    try:
        with pytest.raises(CredentialError, match="invalid_grant"):
            await provider.token()
    finally:
        await provider.close()


BAD_IMPERSONATION = {
    "type": "impersonated_service_account",
    "source_credentials": {"type": "external_account"},
    "service_account_impersonation_url": "https://x/v1/projects/-/serviceAccounts/a:generateAccessToken",
}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"type": "gdch_service_account"}, "has type 'gdch_service_account'; expected one of service_account"),
        (BAD_IMPERSONATION, "is malformed"),
        ({"type": "external_account", "audience": POOL}, "is malformed"),
    ],
)
async def test_a_file_of_an_unknown_type_or_malformed_is_a_credential_error(
    document: dict[str, Any], message: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "bad.json"
    key_file.write_text(json.dumps(document))
    params = {"project": "p", "location": "l", "keyFile": str(key_file)}
    provider = build_provider("gke-eu", CredentialsRef(source="gke", params=params))
    try:
        with pytest.raises(CredentialError, match=message):
            await provider.token()
    finally:
        await provider.close()


async def test_after_a_credential_rotation_the_client_asks_the_container_api_again(
    google: GoogleStandin, gke_cluster: SimCluster, tmp_path: Path
) -> None:
    """GKE credential rotation: a new CA and a new IP (here a new port). The ClusterClient cannot connect,
    asks the provider again, which reads the cluster from the container API anew: no restart."""
    key = google.new_service_account(DISPATCHER, tmp_path / "sa.json")
    provider = build_provider("gke-eu", gke_ref(google, keyFile=str(key)))
    provider.endpoint_refresh_interval = 1.0  # type: ignore[attr-defined]  # a cloud provider waits 30 s
    try:
        async with ClusterClient(provider) as client:
            await client.list_pods("default")
            await asyncio.sleep(1.1)  # past the provider's endpoint-lookup debounce, shortened from 30 s
            await gke_cluster.rotate_certificates(new_address=True)
            google.add_cluster(
                "podgate-test", "europe-west4", "gke-eu", server=gke_cluster.url, ca_pem=gke_cluster.ca_pem
            )
            assert (await client.list_pods("default")).items == ()
        assert google.cluster_requests == 2
    finally:
        await provider.close()
