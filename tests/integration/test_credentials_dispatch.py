"""Dispatch end to end through each provider's credentials: a pod sent over gRPC to the gateway runs on a
simulated EKS, GKE and AKS cluster whose endpoints the gateway discovered through the cloud stand-ins
(DescribeCluster, the container API, ARM) and whose API accepted the cloud tokens it minted, and on
clusters reached through a kubeconfig file and through in-cluster ServiceAccount credentials."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import duration_pb2

from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2, dispatch_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.settings import parse_settings
from gateway.sim.auth import Identity
from gateway.sim.cloud.aks import AksTokenVerifier
from gateway.sim.cloud.eks import EksTokenVerifier
from gateway.sim.cloud.gke import GkeTokenVerifier
from gateway.sim.cluster import SimWorld
from gateway.sim.config import parse
from tests.standins.aws import ACCOUNT, AwsStandin, moto_server
from tests.standins.entra import TENANT, EntraStandin, entra_standin
from tests.standins.google import GoogleStandin, google_standin

ROOT = Identity("podgate", ("system:masters",))
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/podgate-gateway"
SA = "gateway@podgate-test.iam.gserviceaccount.com"
NODE = {"name": "n1", "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "20"}}
XCOM = (
    'import json; print("hello from", {c!r}); open("/airflow/xcom/return.json", "w").write(json.dumps({{"on": {c!r}}}))'
)


def cluster_file(aws: AwsStandin, google: GoogleStandin, entra: EntraStandin, tmp: Path) -> dict[str, Any]:
    common = {"allowedNamespaces": ["default"], "sim": {"nodes": [NODE]}}
    return {
        "apiVersion": "podgate.io/v1",
        "kind": "ClusterList",
        "clusters": [
            {
                "name": "kubeconfig-sim",
                "provider": "kubeconfig",
                "region": "eu-north-1",
                "credentials": {"kubeconfig": {"path": str(tmp / "kubeconfigs" / "kubeconfig-sim.kubeconfig")}},
                **common,
            },
            {
                "name": "incluster-sim",
                "provider": "in-cluster",
                "region": "eu-south-1",
                "credentials": {"inCluster": {"tokenDir": str(tmp / "serviceaccount")}},
                **common,
            },
            {
                "name": "eks-sim",
                "provider": "eks",
                "region": "eu-west-1",
                "credentials": {"eks": {"clusterName": "eks-sim", "region": "eu-west-1", "eksEndpointUrl": aws.url}},
                **common,
            },
            {
                "name": "gke-sim",
                "provider": "gke",
                "region": "europe-west4",
                "credentials": {
                    "gke": {
                        "project": "podgate-test",
                        "location": "europe-west4",
                        "clusterName": "gke-sim",
                        "keyFile": str(tmp / "sa.json"),
                        "containerEndpointUrl": google.url,
                    }
                },
                **common,
            },
            {
                "name": "aks-sim",
                "provider": "aks",
                "region": "westeurope",
                "credentials": {
                    "aks": {
                        "subscriptionId": "sub-1",
                        "resourceGroup": "rg-1",
                        "clusterName": "aks-sim",
                        "tenantId": TENANT,
                        "clientId": "gateway-app",
                        "clientSecretEnv": "PODGATE_E2E_AKS_SECRET",
                        "authorityHost": entra.url,
                        "authorityCaFile": str(entra.ca_file),
                        "armEndpointUrl": entra.url,
                    }
                },
                **common,
            },
        ],
    }


@pytest.fixture(scope="module")
def aws() -> Iterator[AwsStandin]:
    with moto_server() as standin:
        standin.add_key("AKIAPODGATEE2E000001", "e2e-secret-key", USER_ARN)
        yield standin


def mount_service_account(world: SimWorld, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the kubelet mounts into the gateway's own pod, and the service env vars it sets."""
    cluster = world.clusters["incluster-sim"]
    directory.mkdir()
    (directory / "token").write_text(cluster.admin_token)
    (directory / "ca.crt").write_bytes(cluster.ca_pem)
    (directory / "namespace").write_text("default")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(cluster.port))


@pytest.fixture
async def gateway(aws: AwsStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPODGATEE2E000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "e2e-secret-key")
    monkeypatch.setenv("PODGATE_E2E_AKS_SECRET", "e2e-aks-secret")
    async with google_standin() as google, entra_standin(tmp_path) as entra:
        google.new_service_account(SA, tmp_path / "sa.json")
        oid = entra.add_secret_app("gateway-app", "e2e-aks-secret")
        document = cluster_file(aws, google, entra, tmp_path)
        path = tmp_path / "clouds.yaml"
        path.write_text(yaml.safe_dump(document))
        async with SimWorld(parse(document), kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as world:
            eks, gke, aks = (world.clusters[n] for n in ("eks-sim", "gke-sim", "aks-sim"))
            aws.create_eks_cluster("eks-sim", "eu-west-1", server=eks.url, ca_pem=eks.ca_pem)
            eks.add_token_verifier(EksTokenVerifier("eks-sim", aws.principal, {USER_ARN: ROOT}))
            google.add_cluster("podgate-test", "europe-west4", "gke-sim", server=gke.url, ca_pem=gke.ca_pem)
            gke.add_token_verifier(GkeTokenVerifier(google.token_owner, {SA: ROOT}))
            entra.add_cluster("sub-1", "rg-1", "aks-sim", server=aks.url, ca_pem=aks.ca_pem)
            aks.add_token_verifier(AksTokenVerifier(entra.public_key_pem, entra.issuer, {oid: ROOT}))
            mount_service_account(world, tmp_path / "serviceaccount", monkeypatch)
            settings = parse_settings(
                {
                    "server": {"listen": "127.0.0.1:0", "state_dir": str(tmp_path / "state")},
                    "clusters": {"files": [str(path)], "probe_interval_seconds": 0.3},
                    "dispatch": {"gc_interval_seconds": 3600},
                },
                env={},
            )
            gw = await start_gateway(settings)
            try:
                assert gw.problems == []
                yield gw
            finally:
                await gw.stop()


def request(cluster: str) -> dispatch_pb2.PodRequest:
    main = {"name": "base", "image": "python:3.12", "command": ["python", "-c", XCOM.format(c=cluster)]}
    return dispatch_pb2.PodRequest(
        request_id=f"creds-{cluster}",
        pod_json=json.dumps(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "creds"}, "spec": {"containers": [main]}}
        ),
        placement=common_pb2.Placement(clusters=[cluster], timeout=duration_pb2.Duration(seconds=20)),
        xcom=dispatch_pb2.XcomOptions(mode=dispatch_pb2.XCOM_MODE_AUTO),
    )


@pytest.mark.parametrize("cluster", ["kubeconfig-sim", "incluster-sim", "eks-sim", "gke-sim", "aks-sim"])
async def test_pod_runs_on_a_cloud_cluster_with_cloud_credentials(gateway: Gateway, cluster: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        events = [r.event async for r in stub.RunPod(dispatch_pb2.RunPodRequest(pod=request(cluster)), timeout=60)]
    placed = next(e.placed for e in events if e.WhichOneof("event") == "placed")
    assert placed.cluster == cluster
    assert f"hello from {cluster}" in [e.log.text for e in events if e.WhichOneof("event") == "log"]
    final = events[-1].result
    assert final.phase == dispatch_pb2.POD_PHASE_SUCCEEDED, final
    assert json.loads(final.xcom_json) == {"on": cluster}
