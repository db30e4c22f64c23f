"""ARM listClusterUserCredential: the AKS cluster's server and CA when the registration does not give them."""

from __future__ import annotations

import base64
import binascii
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway.credentials.base import CredentialError, Endpoint
from gateway.credentials.kubeconfig_file import KubeconfigError, resolve_context

API_VERSION = "2024-05-01"
TIMEOUT = aiohttp.ClientTimeout(total=30)


def endpoint_from_credential_results(body: Any) -> Endpoint:
    """The first kubeconfig of a CredentialResults body, reduced to server and CA (its user is ignored)."""
    try:
        kubeconfig = base64.b64decode(body["kubeconfigs"][0]["value"], validate=True)
        doc = yaml.safe_load(kubeconfig)
        ctx = resolve_context(doc, "", Path.cwd())
    except (KeyError, IndexError, TypeError, binascii.Error, yaml.YAMLError, KubeconfigError) as exc:
        raise CredentialError(
            f"ARM listClusterUserCredential returned no usable kubeconfig ({type(exc).__name__})"
        ) from None
    return Endpoint(server=ctx.server, ca_data=ctx.ca_data, tls_server_name=ctx.tls_server_name)


async def list_cluster_user_endpoint(url: str, arm_token: str, *, ssl_context: ssl.SSLContext | None) -> Endpoint:
    headers = {"Authorization": f"Bearer {arm_token}", "Content-Length": "0"}
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(url, params={"api-version": API_VERSION}, headers=headers, ssl=ssl_context or True) as response,
    ):
        if response.status != 200:
            raise CredentialError(f"ARM listClusterUserCredential answered {response.status}")
        return endpoint_from_credential_results(await response.json())
