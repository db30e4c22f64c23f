"""Provider for Amazon EKS: endpoint and CA from DescribeCluster, tokens as `aws eks get-token` makes them.

The token is `k8s-aws-v1.` + base64url (no padding) of an STS GetCallerIdentity URL presigned for the
regional STS endpoint with the header `x-k8s-aws-id: <cluster>` signed in. EKS (aws-iam-authenticator)
accepts it for 15 minutes after its X-Amz-Date whatever X-Amz-Expires says (kept at 60 for old
authenticators), so we refresh at 14 minutes. Presigning is local; only DescribeCluster and the
optional AssumeRole call AWS. boto3 is blocking, so every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.params import Params
from gateway.credentials.provider import CLOUD_ENDPOINT_REFRESH_SECONDS, CachingProvider

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 (a format prefix, not a secret)
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES_SECONDS = 60
TOKEN_VALIDITY = timedelta(minutes=15)
KEYS = frozenset({"clusterName", "region", "roleArn", "profile", "eksEndpointUrl", "stsEndpointUrl"})
_PRESIGN_CONFIG = Config(ignore_configured_endpoint_urls=True, retries={"max_attempts": 1})


def encode_token(presigned_url: str) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(presigned_url.encode()).decode().rstrip("=")


def register_cluster_header(sts: Any) -> None:
    """Carry the cluster name from the call's params into a header that gets signed (as awscli does)."""

    def take_param(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if CLUSTER_ID_HEADER in params:
            context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)

    def add_header(request: Any, **_: Any) -> None:
        if CLUSTER_ID_HEADER in request.context:
            request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", take_param)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_header)


def presign_token(sts: Any, cluster_name: str) -> str:
    url = sts.generate_presigned_url(
        "get_caller_identity",
        Params={CLUSTER_ID_HEADER: cluster_name},
        ExpiresIn=PRESIGN_EXPIRES_SECONDS,
        HttpMethod="GET",
    )
    return encode_token(str(url))


class EksProvider(CachingProvider):
    endpoint_refresh_interval = CLOUD_ENDPOINT_REFRESH_SECONDS
    refresh_margin = 60.0  # 15-minute validity, refreshed at 14 minutes

    def __init__(
        self,
        cluster: str,
        *,
        cluster_name: str,
        region: str,
        role_arn: str = "",
        profile: str = "",
        eks_endpoint_url: str = "",
        sts_endpoint_url: str = "",
    ) -> None:
        super().__init__(cluster)
        self._name = cluster_name
        self._region = region
        self._role_arn = role_arn
        self._profile = profile
        self._eks_url = eks_endpoint_url
        self._sts_url = sts_endpoint_url
        self._session: boto3.session.Session | None = None
        self._role_creds: dict[str, Any] | None = None
        self._known_secrets: set[str] = set()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"EksProvider(cluster={self.cluster!r}, eks_cluster={self._name!r}, region={self._region!r})"

    def _boto_session(self) -> boto3.session.Session:
        if self._session is None:
            core = botocore.session.get_session()
            core.set_config_variable("sts_regional_endpoints", "regional")  # as aws-iam-authenticator: never global STS
            self._session = boto3.session.Session(
                botocore_session=core, profile_name=self._profile or None, region_name=self._region
            )
        return self._session

    def _secrets(self) -> tuple[str, ...]:
        return tuple(self._known_secrets)

    def _remember(self, *values: str | None) -> None:
        """Secrets seen in a worker thread, so error scrubbing on the loop never resolves credentials itself."""
        self._known_secrets.update(v for v in values if v)

    async def _fetch_endpoint(self) -> Endpoint:
        return await asyncio.to_thread(self._describe_sync)

    def _describe_sync(self) -> Endpoint:
        eks = self._boto_session().client("eks", region_name=self._region, endpoint_url=self._eks_url or None)
        cluster = eks.describe_cluster(name=self._name)["cluster"]
        server = str(cluster.get("endpoint") or "")
        if not server:
            raise CredentialError(
                f"cluster {self.cluster!r}: EKS cluster {self._name!r} has no endpoint yet (status {cluster.get('status')})"
            )
        try:
            ca = base64.b64decode(cluster["certificateAuthority"]["data"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise CredentialError(f"cluster {self.cluster!r}: EKS returned no usable certificate authority") from None
        return Endpoint(server=server, ca_data=ca)

    async def _fetch_token(self) -> BearerToken:
        async with self._lock:
            return await asyncio.to_thread(self._token_sync)

    def _token_sync(self) -> BearerToken:
        signed_at = datetime.now(UTC)
        sts = self._presign_client()
        return BearerToken(value=presign_token(sts, self._name), expires_at=signed_at + TOKEN_VALIDITY)

    def _presign_client(self) -> Any:
        session = self._boto_session()
        base = session.get_credentials()
        if base is None:
            raise CredentialError(f"cluster {self.cluster!r}: no AWS credentials found in the default chain")
        frozen = base.get_frozen_credentials()
        self._remember(frozen.secret_key, frozen.token)
        if not self._role_arn:
            sts = session.client("sts", region_name=self._region, config=_PRESIGN_CONFIG)
        else:
            creds = self._assumed_role()
            sts = session.client(
                "sts",
                region_name=self._region,
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                config=_PRESIGN_CONFIG,
            )
        register_cluster_header(sts)
        return sts

    def _assumed_role(self) -> dict[str, Any]:
        """Temporary credentials of role_arn, reused until 5 minutes before they expire."""
        creds = self._role_creds
        if creds is None or creds["Expiration"].timestamp() - time.time() < 300 + TOKEN_VALIDITY.total_seconds():
            sts = self._boto_session().client("sts", region_name=self._region, endpoint_url=self._sts_url or None)
            session_name = f"podgate-{self.cluster}"[:64]
            creds = sts.assume_role(RoleArn=self._role_arn, RoleSessionName=session_name)["Credentials"]
            self._remember(creds["SecretAccessKey"], creds["SessionToken"])
            self._role_creds = creds
        return creds


def from_params(params: Params) -> EksProvider:
    params.check_keys(KEYS)
    return EksProvider(
        params.cluster,
        cluster_name=params.get("clusterName") or params.cluster,
        region=params.require("region"),
        role_arn=params.get("roleArn"),
        profile=params.get("profile"),
        eks_endpoint_url=params.get("eksEndpointUrl"),
        sts_endpoint_url=params.get("stsEndpointUrl"),
    )
