"""Short-lived kubeconfigs, proven with kubectl against a simulated cluster: namespace and verb limits
hold (403), revocation cuts the token off (401)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.objects import ClusterObjects
from gateway.credentials.factory import build_provider
from gateway.credentials.issuing import (
    IssuedKubeconfig,
    KubeconfigAccess,
    issue_kubeconfig,
    parse_credential_id,
    revoke_kubeconfig,
)
from gateway.domain import CredentialsRef
from gateway.sim.cluster import SimCluster
from gateway.sim.config import SimClusterSpec
from tests.conftest import clean_env


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    c = SimCluster(
        SimClusterSpec(name="issuer", namespaces=("default", "team-a", "team-b")), kubeconfig_dir=tmp_path, node_side=False
    )
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


@pytest.fixture
async def objects(cluster: SimCluster, tmp_path: Path) -> AsyncIterator[ClusterObjects]:
    provider = build_provider("issuer", CredentialsRef(source="sim"), kubeconfig_dir=tmp_path)
    try:
        async with ClusterClient(provider) as client:
            yield ClusterObjects(client)
    finally:
        await provider.close()


async def kubectl(kubeconfig: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *args,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def issue(
    objects: ClusterObjects, cluster: SimCluster, tmp_path: Path, access: KubeconfigAccess
) -> tuple[IssuedKubeconfig, Path]:
    provider = build_provider("issuer", CredentialsRef(source="sim"), kubeconfig_dir=tmp_path)
    endpoint = await provider.endpoint()
    await provider.close()
    issued = await issue_kubeconfig(
        objects, endpoint, cluster="issuer", namespace="team-a", ttl_seconds=900, access=access
    )
    path = tmp_path / f"{access}.kubeconfig"
    path.write_text(issued.kubeconfig)
    return issued, path


async def test_view_kubeconfig_reads_its_namespace_only(
    objects: ClusterObjects, cluster: SimCluster, tmp_path: Path
) -> None:
    issued, path = await issue(objects, cluster, tmp_path, KubeconfigAccess.VIEW)
    assert 880 <= (issued.expires_at - datetime.now(UTC)).total_seconds() <= 901
    assert issued.service_account == "system:serviceaccount:team-a:podgate-view"
    assert "token" not in repr(issued)
    doc = yaml.safe_load(issued.kubeconfig)
    assert doc["contexts"][0]["context"]["namespace"] == "team-a"
    assert (await kubectl(path, "get", "pods"))[0] == 0
    code, out = await kubectl(path, "get", "pods", "-n", "team-b")
    assert code != 0 and "forbidden" in out.lower()
    assert (await kubectl(path, "auth", "can-i", "create", "pods"))[1].strip() == "no"
    assert (await kubectl(path, "auth", "can-i", "get", "pods/log"))[1].strip() == "yes"
    code, out = await kubectl(path, "delete", "pod", "anything")
    assert code != 0 and "forbidden" in out.lower()


async def test_edit_kubeconfig_may_create_delete_and_exec(
    objects: ClusterObjects, cluster: SimCluster, tmp_path: Path
) -> None:
    _, path = await issue(objects, cluster, tmp_path, KubeconfigAccess.EDIT)
    for verb in ("create pods", "delete pods", "create pods/exec", "list events"):
        assert (await kubectl(path, "auth", "can-i", *verb.split()))[1].strip() == "yes", verb
    assert (await kubectl(path, "auth", "can-i", "create", "secrets"))[1].strip() == "no"
    assert (await kubectl(path, "auth", "can-i", "create", "pods", "-n", "team-b"))[1].strip() == "no"


async def test_revoked_kubeconfig_is_refused(objects: ClusterObjects, cluster: SimCluster, tmp_path: Path) -> None:
    issued, path = await issue(objects, cluster, tmp_path, KubeconfigAccess.VIEW)
    _, other_path = await issue(objects, cluster, tmp_path, KubeconfigAccess.EDIT)
    credential = parse_credential_id(issued.credential_id)
    assert credential.cluster == "issuer"
    assert await revoke_kubeconfig(objects, credential) is True
    code, out = await kubectl(path, "get", "pods")
    assert code != 0 and ("unauthorized" in out.lower() or "must be logged in" in out.lower())
    assert (await kubectl(other_path, "get", "pods"))[0] == 0  # another issuance is untouched
    assert await revoke_kubeconfig(objects, credential) is False


async def test_concurrent_first_issuances_in_a_namespace_all_succeed(
    objects: ClusterObjects, cluster: SimCluster, tmp_path: Path
) -> None:
    """They apply the same ServiceAccount and Role at once: a replace losing the race reads again and retries."""
    provider = build_provider("issuer", CredentialsRef(source="sim"), kubeconfig_dir=tmp_path)
    endpoint = await provider.endpoint()
    await provider.close()
    issued = await asyncio.gather(
        *(
            issue_kubeconfig(objects, endpoint, cluster="issuer", namespace="team-a", ttl_seconds=900, access=access)
            for access in (KubeconfigAccess.VIEW, KubeconfigAccess.EDIT) * 6
        )
    )
    assert len({i.credential_id for i in issued}) == 12
