"""IssueKubeconfig / RevokeKubeconfig through the gateway, proven with kubectl against the simulator."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import duration_pb2

from gateway._proto.podgate.v1 import credentials_pb2, credentials_pb2_grpc
from gateway.app import Gateway, start_gateway
from gateway.sim.cluster import SimWorld
from tests.conftest import BIN, clean_env
from tests.e2e.conftest import LOCAL, gateway_settings


@pytest.fixture
async def creds(gateway: Gateway) -> AsyncIterator[credentials_pb2_grpc.CredentialsServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield credentials_pb2_grpc.CredentialsServiceStub(channel)


async def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs kubectl without blocking the event loop: the simulator it talks to runs in this loop."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "kubectl"),
        "--kubeconfig",
        str(kubeconfig),
        *args,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())


async def issue(
    stub: credentials_pb2_grpc.CredentialsServiceStub, tmp_path: Path, access: int, namespace: str = "airflow"
) -> tuple[Path, str]:
    reply = await stub.IssueKubeconfig(
        credentials_pb2.IssueKubeconfigRequest(
            cluster="local-eu-cpu", namespace=namespace, ttl=duration_pb2.Duration(seconds=900), access=access
        )
    )
    path = tmp_path / f"issued-{access}.kubeconfig"
    path.write_text(reply.kubeconfig)
    assert reply.expire_time.seconds > 0 and reply.credential_id.startswith("local-eu-cpu/airflow/")
    return path, reply.credential_id


async def test_view_kubeconfig_reads_its_namespace_only_and_dies_on_revoke(
    creds: credentials_pb2_grpc.CredentialsServiceStub, gateway: Gateway, tmp_path: Path
) -> None:
    path, credential_id = await issue(creds, tmp_path, credentials_pb2.KUBECONFIG_ACCESS_VIEW)
    assert (await kubectl(path, "get", "pods")).returncode == 0
    other = await kubectl(path, "get", "pods", "-n", "default")
    assert other.returncode != 0 and "forbidden" in other.stderr.lower()
    assert (await kubectl(path, "auth", "can-i", "delete", "pods")).stdout.strip() == "no"
    await creds.RevokeKubeconfig(credentials_pb2.RevokeKubeconfigRequest(credential_id=credential_id))
    revoked = await kubectl(path, "get", "pods")
    assert revoked.returncode != 0 and "unauthorized" in revoked.stderr.lower()
    audit, _ = await gateway.store.list_audit()
    assert [a.action for a in audit][:2] == ["kubeconfig.revoke", "kubeconfig.issue"]
    assert all("token" not in str(a.record).lower() for a in audit)


async def test_issued_kubeconfig_is_refused_after_its_ttl(
    creds: credentials_pb2_grpc.CredentialsServiceStub, world: SimWorld, tmp_path: Path
) -> None:
    path, _ = await issue(creds, tmp_path, credentials_pb2.KUBECONFIG_ACCESS_VIEW)
    world.clusters["local-eu-cpu"].advance_clock(600)  # leaves minutes of margin for a slow machine
    assert (await kubectl(path, "get", "pods")).returncode == 0
    world.clusters["local-eu-cpu"].advance_clock(301)
    expired = await kubectl(path, "get", "pods")
    assert expired.returncode != 0 and "unauthorized" in expired.stderr.lower()


async def test_edit_kubeconfig_may_delete_pods(
    creds: credentials_pb2_grpc.CredentialsServiceStub, tmp_path: Path
) -> None:
    path, _ = await issue(creds, tmp_path, credentials_pb2.KUBECONFIG_ACCESS_EDIT)
    assert (await kubectl(path, "auth", "can-i", "delete", "pods")).stdout.strip() == "yes"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (
            credentials_pb2.IssueKubeconfigRequest(
                cluster="local-eu-cpu", namespace="kube-system", ttl=duration_pb2.Duration(seconds=900)
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (credentials_pb2.IssueKubeconfigRequest(cluster="nope", namespace="airflow"), grpc.StatusCode.NOT_FOUND),
        (
            credentials_pb2.IssueKubeconfigRequest(
                cluster="local-eu-cpu", namespace="airflow", ttl=duration_pb2.Duration(seconds=60)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (credentials_pb2.IssueKubeconfigRequest(namespace="airflow"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["namespace-not-allowed", "unknown-cluster", "ttl-below-kubernetes-minimum", "no-cluster"],
)
async def test_bad_issue_requests(
    creds: credentials_pb2_grpc.CredentialsServiceStub,
    request_: credentials_pb2.IssueKubeconfigRequest,
    code: grpc.StatusCode,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await creds.IssueKubeconfig(request_)
    assert caught.value.code() == code


async def test_foreign_credential_id_is_invalid(creds: credentials_pb2_grpc.CredentialsServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await creds.RevokeKubeconfig(credentials_pb2.RevokeKubeconfigRequest(credential_id="x"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_registrations_issued_server_is_the_url_issued_kubeconfigs_carry(
    world: SimWorld, tmp_path: Path
) -> None:
    """The gateway reaches the cluster at one address (here 127.0.0.1, in production the in-cluster service
    address); `issuedServer` names the one its users reach (here localhost, also in the server's certificate)."""
    cluster = world.clusters["local-eu-cpu"]
    outside = f"https://localhost:{cluster.port}"
    document = yaml.safe_load(LOCAL.read_text())
    for entry in document["clusters"]:
        if entry["name"] == "local-eu-cpu":
            entry["issuedServer"] = outside
    cluster_file = tmp_path / "clusters.yaml"
    cluster_file.write_text(yaml.safe_dump(document))
    gw = await start_gateway(gateway_settings(tmp_path, {"clusters": {"files": [str(cluster_file)]}}))
    try:
        assert gw.problems == []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            path, _ = await issue(credentials_pb2_grpc.CredentialsServiceStub(channel), tmp_path,
                                  credentials_pb2.KUBECONFIG_ACCESS_VIEW)  # fmt: skip
        (entry,) = yaml.safe_load(path.read_text())["clusters"]
        assert entry["cluster"]["server"] == outside != cluster.url
        assert (await kubectl(path, "get", "pods")).returncode == 0
    finally:
        await gw.stop()
