"""Writing kubeconfigs for a simulated cluster and calling it through the gateway's own client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.clusters.kubeapi import ClusterClient
from gateway.clusters.kubeapi.request import Request
from gateway.credentials.factory import build_provider
from gateway.domain import CredentialsRef
from gateway.sim.cluster import SimCluster


def write_kubeconfig(
    cluster: SimCluster, path: Path, user: dict[str, Any], *, ca_file: Path | None = None, **cluster_keys: Any
) -> Path:
    """A kubeconfig for `cluster` with `user`; the CA inline, or in `ca_file` named by a relative path."""
    doc = cluster.kubeconfig()
    doc["users"][0]["user"] = user
    entry = doc["clusters"][0]["cluster"]
    if ca_file is not None:
        ca_file.write_bytes(cluster.ca_pem)
        del entry["certificate-authority-data"]
        entry["certificate-authority"] = str(ca_file.relative_to(path.parent))
    entry.update(cluster_keys)
    path.write_text(yaml.safe_dump(doc))
    return path


def client_for(path: Path | str, name: str = "kube-a") -> ClusterClient:
    provider = build_provider(name, CredentialsRef(source="kubeconfig", params={"path": str(path)}))
    return ClusterClient(provider)


async def whoami(client: ClusterClient) -> dict[str, Any]:
    """`kubectl auth whoami`: the user the API server saw, from a SelfSubjectReview."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    review = await client.send(Request(method="POST", path="/apis/authentication.k8s.io/v1/selfsubjectreviews", body=body))
    user: dict[str, Any] = review["status"]["userInfo"]
    return user
