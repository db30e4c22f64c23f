"""Credential rotation without a restart: the simulator rotates its CA and server certificate (GKE's rotation
also moves the address; AKS `rotate-certs` also replaces client certificates), and the same ClusterClient
keeps working: after a TLS, connect or authentication failure it asks the provider for the endpoint again
(single flight), which re-reads the kubeconfig and the CA and client-certificate files it names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.clusters.kubeapi import ClusterClient
from gateway.credentials.base import Endpoint
from gateway.credentials.kubeconfig import KubeconfigProvider
from gateway.sim.cluster import SimCluster, SimWorld
from gateway.sim.config import SimClusterSpec, SimConfig
from tests.integration.kubeconfig_helpers import write_kubeconfig
from tests.standins.probe import sim_cluster


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimCluster]:
    async with sim_cluster("kube-r", tmp_path) as cluster:
        yield cluster


class Recording:
    """Our provider protocol around the real provider, keeping every distinct endpoint it handed out."""

    def __init__(self, inner: KubeconfigProvider) -> None:
        self.inner = inner
        self.cluster = inner.cluster
        self.seen: list[Endpoint] = []

    async def endpoint(self, *, stale: Endpoint | None = None) -> Endpoint:
        endpoint = await self.inner.endpoint(stale=stale)
        if not any(endpoint is e for e in self.seen):
            self.seen.append(endpoint)
        return endpoint

    async def token(self, *, force_refresh: bool = False) -> object:
        return await self.inner.token(force_refresh=force_refresh)

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("new_address", [False, True], ids=["new-ca", "new-ca-and-address"])
async def test_a_rotated_ca_and_address_are_picked_up_once_by_every_caller(sim: SimCluster, new_address: bool) -> None:
    provider = Recording(KubeconfigProvider(sim.name, path=sim.kubeconfig_path))
    async with ClusterClient(provider) as client:  # type: ignore[arg-type]
        await client.list_pods("default")
        old_url = sim.url
        await asyncio.sleep(1.1)  # past the provider's endpoint-lookup debounce
        await sim.rotate_certificates(new_address=new_address)
        assert (sim.url != old_url) is new_address
        listed = await asyncio.gather(*(client.list_pods("default") for _ in range(50)))
        assert all(page.items == () for page in listed)
        assert [e.server for e in provider.seen] == [old_url, sim.url]  # one lookup for the 50 callers
        assert provider.seen[1].ca_data == sim.ca_pem != provider.seen[0].ca_data


async def test_rotated_client_certificate_files_are_read_again(sim: SimCluster, tmp_path: Path) -> None:
    """AKS `rotate-certs`: a new CA and new client certificates, written over the files a kubeconfig names."""
    cert, key, ca = tmp_path / "client.crt", tmp_path / "client.key", tmp_path / "ca.crt"

    def write_credentials() -> None:
        pair = sim.issue_client_certificate("rotated-user", ("system:masters",))
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)

    write_credentials()
    path = write_kubeconfig(sim, tmp_path / "certs.kubeconfig", {"client-certificate": str(cert),
                            "client-key": str(key)}, ca_file=ca)  # fmt: skip
    async with ClusterClient(KubeconfigProvider(sim.name, path=path)) as client:
        await client.list_pods("default")
        await asyncio.sleep(1.1)
        await sim.rotate_certificates()
        ca.write_bytes(sim.ca_pem)
        write_credentials()
        assert (await client.list_pods("default")).items == ()
        assert sim.faults.log[-1].user == "rotated-user"


async def test_the_control_endpoint_rotates_certificates(tmp_path: Path) -> None:
    config = SimConfig((SimClusterSpec(name="kube-c"),))
    async with SimWorld(config, kubeconfig_dir=tmp_path, node_side=False) as world:
        cluster, control = world.clusters["kube-c"], world.control
        old_ca, old_url = cluster.ca_pem, cluster.url
        async with aiohttp.ClientSession(control.url, headers={"Authorization": f"Bearer {control.token}"}) as ctl:
            bad = await ctl.post("/clusters/kube-c/rotate-certificates", json={"newAddress": "yes"})
            assert bad.status == 400
            moved = await ctl.post("/clusters/kube-c/rotate-certificates", json={"newAddress": True})
            assert (await moved.json())["url"] == cluster.url != old_url
        assert cluster.ca_pem != old_ca
        assert cluster.ca_pem.decode().strip() in _kubeconfig_ca(cluster)


def _kubeconfig_ca(cluster: SimCluster) -> str:
    import base64

    import yaml

    entry = yaml.safe_load(cluster.kubeconfig_path.read_text())["clusters"][0]["cluster"]
    return base64.b64decode(entry["certificate-authority-data"]).decode()
