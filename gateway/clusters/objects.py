"""The Kubernetes writes kubeconfig issuing needs (credentials.issuing.ObjectApi), over a cluster's client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.kubeapi.request import ROLE_BINDINGS, ROLES, SECRETS, SERVICE_ACCOUNTS, Resource

_RESOURCES: Mapping[str, Resource] = {
    "ServiceAccount": SERVICE_ACCOUNTS,
    "Role": ROLES,
    "RoleBinding": ROLE_BINDINGS,
    "Secret": SECRETS,
}


class ClusterObjects:
    def __init__(self, client: ClusterClient) -> None:
        self._client = client

    async def apply(self, kind: str, namespace: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return await self._client.ensure_object(_RESOURCES[kind], namespace, body)

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        try:
            await self._client.delete_object(_RESOURCES[kind], namespace, name)
        except kube.NotFound:
            return False
        return True

    async def token_request(
        self, namespace: str, service_account: str, *, expiration_seconds: int, bound_secret: str, bound_secret_uid: str
    ) -> tuple[str, str]:
        return await self._client.create_token(
            namespace, service_account, expiration_seconds=expiration_seconds, bound_secret=bound_secret,
            bound_secret_uid=bound_secret_uid,
        )  # fmt: skip
