"""Provider for Google GKE: endpoint and CA from the container API, OAuth access tokens from google-auth.

Credentials are Application Default Credentials or a key file of any type Google issues (service
account, authorized user, workload identity federation from AWS, a file, a URL or an executable,
impersonated service account), optionally impersonating a target service account, always with the
cloud-platform scope. google-auth is blocking (requests), so its calls run
in a worker thread; our TokenCache decides when to refresh, google-auth only how.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.auth import aws, external_account_authorized_user, identity_pool, impersonated_credentials, pluggable
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.params import Params
from gateway.credentials.provider import CLOUD_ENDPOINT_REFRESH_SECONDS, CachingProvider

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


def _external_account(info: dict[str, Any]) -> Any:
    """Workload identity federation, by where the subject token comes from (google-auth's own rule)."""
    source = info.get("credential_source") or {}
    if str(source.get("environment_id", "")).startswith("aws"):
        return aws.Credentials.from_info(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
    if "executable" in source:  # runs only with GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1, google-auth's rule
        return pluggable.Credentials.from_info(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
    return identity_pool.Credentials.from_info(info, scopes=list(SCOPES))  # type: ignore[no-untyped-call]


LOADERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "service_account": lambda i: service_account.Credentials.from_service_account_info(i, scopes=list(SCOPES)),  # type: ignore[no-untyped-call]
    "authorized_user": lambda i: user_credentials.Credentials.from_authorized_user_info(i, scopes=list(SCOPES)),  # type: ignore[no-untyped-call]
    "external_account": _external_account,
    "external_account_authorized_user": lambda i: external_account_authorized_user.Credentials.from_info(i),  # type: ignore[no-untyped-call]
}
IMPERSONATION_SOURCES = ("service_account", "authorized_user", "external_account_authorized_user")


def _impersonated(info: dict[str, Any]) -> Any:
    """`gcloud auth application-default login --impersonate-service-account`'s file. Built like google-auth's
    loader, except that the file's own generateAccessToken URL is used (google-auth keeps only the target)."""
    url = str(info.get("service_account_impersonation_url") or "")
    target = url.rpartition("/")[2].partition(":generateAccessToken")[0]
    source = info.get("source_credentials")
    if not target or not isinstance(source, dict) or source.get("type") not in IMPERSONATION_SOURCES:
        raise ValueError(f"needs service_account_impersonation_url and source_credentials of {IMPERSONATION_SOURCES}")
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=LOADERS[source["type"]](source),
        target_principal=target,
        target_scopes=list(SCOPES),
        delegates=info.get("delegates") or None,
        iam_endpoint_override=url,
    )


LOADERS["impersonated_service_account"] = _impersonated


def _from_key_file(path: str) -> Any:
    """Credentials of every file type `gcloud` and the console write, each by google-auth's loader for that type.

    Not `google.auth.load_credentials_from_file`: google-auth deprecates it (DeprecationWarning) for the
    type-specific loaders, so that a file of an unexpected type is refused rather than loaded; see
    docs/decisions/0011-gke-credential-files.md.
    """
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise CredentialError(f"cannot read key file {path!r}: {type(e).__name__}") from None
    kind = info.get("type") if isinstance(info, dict) else None
    loader = LOADERS.get(str(kind))
    if loader is None:
        raise CredentialError(f"key file {path!r} has type {kind!r}; expected one of {', '.join(LOADERS)}")
    try:
        return loader(info)
    except (ValueError, TypeError, KeyError, google.auth.exceptions.GoogleAuthError) as e:
        raise CredentialError(f"key file {path!r} ({kind}) is malformed: {str(e)[:300]}") from None


class GkeProvider(CachingProvider):
    endpoint_refresh_interval = CLOUD_ENDPOINT_REFRESH_SECONDS
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
