"""Provider for Google GKE: endpoint and CA from the container API, OAuth access tokens from google-auth.

Credentials are Application Default Credentials, a key file (service account or any type google-auth
loads; its token_uri decides where tokens come from), optionally impersonating a target service
account, always with the cloud-platform scope. google-auth is blocking (requests), so its calls run
in a worker thread; our TokenCache decides when to refresh, google-auth only how.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC
from typing import Any

import google.auth
import google.auth.transport.requests
import requests
from google.auth import identity_pool, impersonated_credentials
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.params import Params
from gateway.credentials.provider import CachingProvider

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CONTAINER_API = "https://container.googleapis.com"
IAM_CREDENTIALS_API = "https://iamcredentials.googleapis.com"
KEYS = frozenset(
    {
        "project",
        "location",
        "clusterName",
        "keyFile",
        "impersonateServiceAccount",
        "containerEndpointUrl",
        "iamCredentialsEndpointUrl",
    }
)
HTTP_TIMEOUT = 30.0


def _from_key_file(path: str) -> Any:
    """Credentials of the key file's declared type, only among the types we expect to be given."""
    with open(path) as f:
        info = json.load(f)
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
    if kind == "external_account":  # workload identity federation
        return identity_pool.Credentials.from_info(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
    if kind == "authorized_user":
        return user_credentials.Credentials.from_authorized_user_info(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
    raise CredentialError(
        f"key file {path!r} has type {kind!r}; expected service_account, external_account or authorized_user"
    )


class GkeProvider(CachingProvider):
    refresh_margin = 300.0

    def __init__(
        self,
        cluster: str,
        *,
        project: str,
        location: str,
        cluster_name: str,
        key_file: str = "",
        impersonate: str = "",
        container_endpoint_url: str = CONTAINER_API,
        iam_credentials_endpoint_url: str = IAM_CREDENTIALS_API,
    ) -> None:
        super().__init__(cluster)
        self._resource = f"projects/{project}/locations/{location}/clusters/{cluster_name}"
        self._key_file = key_file
        self._impersonate = impersonate
        self._container_url = container_endpoint_url.rstrip("/")
        self._iam_url = iam_credentials_endpoint_url.rstrip("/")
        self._credentials: Any = None
        self._http = requests.Session()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"GkeProvider(cluster={self.cluster!r}, resource={self._resource!r})"

    def _google_credentials(self) -> Any:
        if self._credentials is None:
            if self._key_file:
                creds = _from_key_file(self._key_file)
            else:
                creds, _ = google.auth.default(scopes=list(SCOPES))
            if self._impersonate:
                creds = impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
                    source_credentials=creds,
                    target_principal=self._impersonate,
                    target_scopes=list(SCOPES),
                    lifetime=3600,
                    iam_endpoint_override=(
                        f"{self._iam_url}/v1/projects/-/serviceAccounts/{self._impersonate}:generateAccessToken"
                    ),
                )
            self._credentials = creds
        return self._credentials

    async def _fetch_token(self) -> BearerToken:
        async with self._lock:
            return await asyncio.to_thread(self._refresh_sync)

    def _refresh_sync(self) -> BearerToken:
        creds = self._google_credentials()
        creds.refresh(google.auth.transport.requests.Request(self._http))
        if not creds.token:
            raise CredentialError(f"cluster {self.cluster!r}: google-auth returned no access token")
        expiry = creds.expiry.replace(tzinfo=UTC) if creds.expiry is not None else None
        return BearerToken(value=str(creds.token), expires_at=expiry)

    async def _fetch_endpoint(self) -> Endpoint:
        token = await self.token()
        assert token is not None
        return await asyncio.to_thread(self._get_cluster_sync, token)

    def _get_cluster_sync(self, token: BearerToken) -> Endpoint:
        # Our cached token is used so the endpoint lookup does not cost a second token request.
        url = f"{self._container_url}/v1/{self._resource}"
        response = self._http.get(url, headers={"Authorization": f"Bearer {token.value}"}, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise CredentialError(
                f"cluster {self.cluster!r}: container API answered {response.status_code} for {self._resource}"
            )
        body = response.json()
        endpoint = str(body.get("endpoint") or "")
        try:
            ca = base64.b64decode(body["masterAuth"]["clusterCaCertificate"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise CredentialError(f"cluster {self.cluster!r}: container API returned no usable CA") from None
        if not endpoint:
            raise CredentialError(
                f"cluster {self.cluster!r}: {self._resource} has no endpoint (status {body.get('status')})"
            )
        return Endpoint(server=f"https://{endpoint}", ca_data=ca)

    async def _close_resources(self) -> None:
        self._http.close()


def from_params(params: Params) -> GkeProvider:
    params.check_keys(KEYS)
    return GkeProvider(
        params.cluster,
        project=params.require("project"),
        location=params.require("location"),
        cluster_name=params.get("clusterName") or params.cluster,
        key_file=params.get("keyFile"),
        impersonate=params.get("impersonateServiceAccount"),
        container_endpoint_url=params.get("containerEndpointUrl", CONTAINER_API),
        iam_credentials_endpoint_url=params.get("iamCredentialsEndpointUrl", IAM_CREDENTIALS_API),
    )
