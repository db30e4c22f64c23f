"""Calling a simulated cluster the way the gateway will: the provider's endpoint, TLS context and token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from gateway.credentials.base import CredentialProvider
from gateway.sim.cluster import SimCluster
from gateway.sim.config import SimClusterSpec


async def list_pods(provider: CredentialProvider, *, force_refresh: bool = False) -> int:
    """GET /api/v1/namespaces/default/pods with the provider's credentials; returns the HTTP status."""
    endpoint = await provider.endpoint()
    token = await provider.token(force_refresh=force_refresh)
    headers = {"Authorization": f"Bearer {token.value}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{endpoint.server}/api/v1/namespaces/default/pods", ssl=endpoint.ssl_context(), headers=headers
        ) as r,
    ):
        return r.status


@asynccontextmanager
async def sim_cluster(name: str, directory: Path) -> AsyncIterator[SimCluster]:
    """One simulated cluster (API server only: credentials tests run no pods)."""
    cluster = SimCluster(SimClusterSpec(name=name), kubeconfig_dir=directory, node_side=False)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()
