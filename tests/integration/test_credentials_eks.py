"""EKS end to end: moto (EKS + STS) for the cloud, the simulator playing the EKS cluster's authenticator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.credentials.base import CredentialError
from gateway.credentials.factory import build_provider
from gateway.domain import CredentialsRef
from gateway.sim.auth import Identity
from gateway.sim.cloud.eks import EksTokenVerifier
from gateway.sim.cluster import SimCluster
from tests.standins.aws import ACCOUNT, AwsStandin, moto_server
from tests.standins.probe import list_pods, sim_cluster

REGION = "eu-west-1"
ACCESS_KEY = "AKIAPODGATEENV000001"
SECRET_KEY = "CANARY-aws-secret-env-51c2"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/podgate"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/podgate-deployer"
ADMIN = Identity("podgate", ("system:masters",))
DEPLOYER = Identity("deployer", ("system:masters",))


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsStandin]:
    with moto_server() as standin:
        standin.add_key(ACCESS_KEY, SECRET_KEY, USER_ARN)
        yield standin


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default boto3 chain finds exactly our keys: env variables, no stray profile or config."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)


@pytest.fixture
async def eks_cluster(aws: AwsStandin, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SimCluster]:
    """A simulated cluster registered in moto as the EKS cluster of the same name."""
    name = f"eks-{request.node.name.split('[')[0][-20:].replace('_', '-')}"
    async with sim_cluster(name, tmp_path) as cluster:
        aws.create_eks_cluster(name, REGION, server=cluster.url, ca_pem=cluster.ca_pem)
        verifier = EksTokenVerifier(name, aws.principal, {USER_ARN: ADMIN, ROLE_ARN: DEPLOYER})
        cluster.add_token_verifier(verifier)
        yield cluster


def eks_ref(aws: AwsStandin, cluster: str, **extra: str) -> CredentialsRef:
    return CredentialsRef(
        source="eks", params={"clusterName": cluster, "region": REGION, "eksEndpointUrl": aws.url, **extra}
    )


@pytest.mark.usefixtures("aws_env")
async def test_token_from_env_credentials_is_accepted(aws: AwsStandin, eks_cluster: SimCluster) -> None:
    provider = build_provider("prod-eu", eks_ref(aws, eks_cluster.name))
    try:
        endpoint = await provider.endpoint()
        assert endpoint.server == eks_cluster.url
        assert endpoint.ca_data == eks_cluster.ca_pem
        token = await provider.token()
        assert token is not None and token.value.startswith("k8s-aws-v1.")
        assert token.expires_at is not None
        assert await list_pods(provider) == 200
        assert (await provider.token()).value == token.value  # cached: not re-signed per request
    finally:
        await provider.close()


@pytest.mark.usefixtures("aws_env")
async def test_role_arn_is_assumed_through_sts(aws: AwsStandin, eks_cluster: SimCluster) -> None:
    provider = build_provider("prod-eu", eks_ref(aws, eks_cluster.name, roleArn=ROLE_ARN, stsEndpointUrl=aws.url))
    try:
        assert await list_pods(provider) == 200
        token = await provider.token()
        assert token is not None
        only_role = EksTokenVerifier(eks_cluster.name, aws.principal, {ROLE_ARN: DEPLOYER})
        only_user = EksTokenVerifier(eks_cluster.name, aws.principal, {USER_ARN: ADMIN})
        assert only_role(token.value) == DEPLOYER  # signed with the assumed role's temporary keys
        assert only_user(token.value) is None
    finally:
        await provider.close()


async def test_profile_from_shared_credentials_file(
    aws: AwsStandin, eks_cluster: SimCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[podgate]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    provider = build_provider("prod-eu", eks_ref(aws, eks_cluster.name, profile="podgate"))
    try:
        assert await list_pods(provider) == 200
    finally:
        await provider.close()


@pytest.mark.usefixtures("aws_env")
async def test_token_for_another_cluster_is_refused(aws: AwsStandin, eks_cluster: SimCluster) -> None:
    """The other cluster exists in EKS and points at the same server, but its name is signed into the token."""
    aws.create_eks_cluster("eks-impostor", REGION, server=eks_cluster.url, ca_pem=eks_cluster.ca_pem)
    provider = build_provider("impostor", eks_ref(aws, "eks-impostor"))
    try:
        assert await list_pods(provider) == 401
    finally:
        await provider.close()


@pytest.mark.usefixtures("aws_env")
async def test_unknown_eks_cluster_is_a_clear_error(aws: AwsStandin) -> None:
    provider = build_provider("ghost", eks_ref(aws, "no-such-cluster"))
    try:
        with pytest.raises(
            CredentialError, match=r"cluster 'ghost': endpoint lookup failed: .*ResourceNotFound"
        ) as caught:
            await provider.endpoint()
        assert SECRET_KEY not in str(caught.value)
    finally:
        await provider.close()


async def test_web_identity_irsa_from_the_default_chain(
    aws: AwsStandin, eks_cluster: SimCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """IRSA: no keys at all, a projected web-identity token and a role; botocore's chain calls STS (moto)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    token_file = tmp_path / "web-identity-token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cG9kZ2F0ZTpnYXRld2F5In0.c2ln")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", aws.url)  # where the chain's AssumeRoleWithWebIdentity goes
    provider = build_provider("prod-eu", eks_ref(aws, eks_cluster.name))
    try:
        assert await list_pods(provider) == 200
        token = await provider.token()
        assert token is not None
        assert EksTokenVerifier(eks_cluster.name, aws.principal, {ROLE_ARN: DEPLOYER})(token.value) == DEPLOYER
    finally:
        await provider.close()
