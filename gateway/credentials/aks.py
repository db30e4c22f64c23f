"""Provider for Azure AKS (Entra ID integrated): tokens from azure-identity for the AKS server application.

Which azure-identity credential: a client secret (read from the env var `clientSecretEnv` names),
workload identity (federated token file), managed identity, or DefaultAzureCredential's chain. The
endpoint and CA come from the registration (`server` + `caFile`) or from ARM listClusterUserCredential.
A private authority (sovereign cloud, or the test stand-in) is trusted through `authorityCaFile`,
handed to the SDK's transport explicitly, never through process-wide CA variables.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity import aio as identity

from gateway.credentials.aks_arm import list_cluster_user_endpoint
from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.params import Params
from gateway.credentials.provider import CLOUD_ENDPOINT_REFRESH_SECONDS, CachingProvider

AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AKS_SCOPE = f"{AKS_SERVER_APP_ID}/.default"
KEYS = frozenset(
    {
        "subscriptionId",
        "resourceGroup",
        "clusterName",
        "server",
        "caFile",
        "tenantId",
        "clientId",
        "clientSecretEnv",
        "authorityHost",
        "armEndpointUrl",
        "credential",
        "tokenFile",
        "authorityCaFile",
    }
)
CREDENTIAL_KINDS = ("clientSecret", "workloadIdentity", "managedIdentity", "default")


class AksProvider(CachingProvider):
    endpoint_refresh_interval = CLOUD_ENDPOINT_REFRESH_SECONDS
    refresh_margin = 300.0

    def __init__(
        self,
        cluster: str,
        *,
        credential: AsyncTokenCredential,
        server: str = "",
        ca_file: Path | None = None,
        arm: ArmTarget | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        super().__init__(cluster)
        if not server and arm is None:
            raise CredentialError(
                f"cluster {cluster!r}: aks credentials need 'server' (+ 'caFile') or the ARM coordinates"
            )
        self._credential = credential
        self._server = server
        self._ca_file = ca_file
        self._arm = arm
        self._known_secrets = secrets

    def __repr__(self) -> str:
        return f"AksProvider(cluster={self.cluster!r}, credential={type(self._credential).__name__})"

    def _secrets(self) -> tuple[str, ...]:
        return self._known_secrets

    async def _fetch_token(self) -> BearerToken:
        access = await self._credential.get_token(AKS_SCOPE)
        return BearerToken(value=access.token, expires_at=datetime.fromtimestamp(access.expires_on, UTC))

    async def _fetch_endpoint(self) -> Endpoint:
        if self._server:
            ca = await asyncio.to_thread(self._ca_file.read_bytes) if self._ca_file else b""
            return Endpoint(server=self._server, ca_data=ca)
        assert self._arm is not None
        arm_token = await self._credential.get_token(f"{self._arm.resource}/.default")
        return await list_cluster_user_endpoint(self._arm.url, arm_token.token, ssl_context=self._arm.ssl_context)

    async def _close_resources(self) -> None:
        await self._credential.close()


class ArmTarget:
    """The ARM URL of a managed cluster's listClusterUserCredential action, and how to trust ARM."""

    def __init__(self, *, base_url: str, subscription: str, group: str, name: str, ssl_context: ssl.SSLContext | None):
        self.resource = base_url.rstrip("/")
        self.url = (
            f"{self.resource}/subscriptions/{subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{name}/listClusterUserCredential"
        )
        self.ssl_context = ssl_context


def _credential(params: Params, environ: Mapping[str, str], transport_kwargs: dict[str, Any]) -> AsyncTokenCredential:
    kind = params.get("credential") or ("clientSecret" if params.get("clientSecretEnv") else "default")
    if kind not in CREDENTIAL_KINDS:
        raise params.error(f"credential {kind!r} is not one of {list(CREDENTIAL_KINDS)}")
    authority = params.get("authorityHost")
    common: dict[str, Any] = {**transport_kwargs}
    if authority:
        common.update(authority=authority, disable_instance_discovery=True)
    if kind == "clientSecret":
        secret = params.secret_from_env("clientSecretEnv", environ)
        return identity.ClientSecretCredential(params.require("tenantId"), params.require("clientId"), secret, **common)
    if kind == "workloadIdentity":
        token_file = params.get("tokenFile") or environ.get("AZURE_FEDERATED_TOKEN_FILE", "")
        return identity.WorkloadIdentityCredential(
            tenant_id=params.get("tenantId") or environ.get("AZURE_TENANT_ID", ""),
            client_id=params.get("clientId") or environ.get("AZURE_CLIENT_ID", ""),
            token_file_path=token_file,
            **common,
        )
    if kind == "managedIdentity":
        return identity.ManagedIdentityCredential(client_id=params.get("clientId") or None, **transport_kwargs)
    return identity.DefaultAzureCredential(
        **({"authority": authority} if authority else {}),
        **transport_kwargs,
        exclude_interactive_browser_credential=True,
    )


def from_params(params: Params, environ: Mapping[str, str] | None = None) -> AksProvider:
    params.check_keys(KEYS)
    env = os.environ if environ is None else environ
    transport_kwargs: dict[str, Any] = {}
    ssl_context: ssl.SSLContext | None = None
    if params.get("authorityCaFile"):
        ca_path = params.readable_file("authorityCaFile")
        transport_kwargs["connection_verify"] = str(ca_path)
        ssl_context = ssl.create_default_context(cafile=str(ca_path))
    arm = None
    if not params.get("server"):
        arm = ArmTarget(
            base_url=params.get("armEndpointUrl") or "https://management.azure.com",
            subscription=params.require("subscriptionId"),
            group=params.require("resourceGroup"),
            name=params.get("clusterName") or params.cluster,
            ssl_context=ssl_context,
        )
    secret = env.get(params.get("clientSecretEnv"), "") if params.get("clientSecretEnv") else ""
    return AksProvider(
        params.cluster,
        credential=_credential(params, env, transport_kwargs),
        server=params.get("server"),
        ca_file=params.readable_file("caFile") if params.get("caFile") else None,
        arm=arm,
        secrets=(secret,),
    )
