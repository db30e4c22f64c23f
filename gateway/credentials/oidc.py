"""Refreshing a kubeconfig's OIDC id-token (`auth-provider: oidc`) at its issuer, as client-go's plugin does.

The issuer's token endpoint comes from its discovery document; the refresh token is sent in a
`refresh_token` grant with the client's id and secret as HTTP basic auth (form-encoded first, per
RFC 6749 2.3.1, as Go's oauth2 does). The answer must carry an `id_token`; a new `refresh_token`, when
the issuer rotates it, replaces the old one. The issuer is reached through HTTPS_PROXY/NO_PROXY like
client-go's, trusting `idp-certificate-authority(-data)` or else the system store.
See docs/decisions/0010-kubeconfig-oidc-and-proxies.md for why this is a few lines of aiohttp.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import jwt

from gateway.credentials import proxy as proxies
from gateway.credentials.kubeconfig_file import OidcConfig

TIMEOUT = aiohttp.ClientTimeout(total=30)


class OidcError(Exception):
    """The issuer could not refresh the id-token; the message quotes no token or secret."""


@dataclass(frozen=True, kw_only=True)
class Refreshed:
    id_token: str = field(repr=False)
    refresh_token: str = field(repr=False)  # the issuer's new one, or "" when it did not rotate it
    expires_at: datetime | None


def token_expiry(id_token: str) -> datetime | None:
    """The `exp` of an id-token, read without verifying it (the API server verifies); None if unreadable."""
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None


def _ssl_context(ca_data: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_data.decode() if ca_data else None)


async def _json(response: aiohttp.ClientResponse, what: str) -> Mapping[str, Any]:
    try:
        doc = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        doc = None
    if not isinstance(doc, Mapping):
        raise OidcError(f"{what} answered HTTP {response.status} without a JSON object")
    if response.status != 200:
        reason = str(doc.get("error") or "unknown error")[:100]
        raise OidcError(f"{what} answered HTTP {response.status}: {reason}")
    return doc


async def refresh(
    config: OidcConfig, refresh_token: str, *, ca_data: bytes, environ: Mapping[str, str]
) -> Refreshed:
    """A new id-token from the issuer for `refresh_token`. Raises OidcError."""
    issuer = config.issuer.rstrip("/")
    proxy = proxies.proxy_for(issuer, "", environ)
    connector = proxies.connector(_ssl_context(ca_data), proxy)
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    headers = {}
    if config.client_secret:
        headers["Authorization"] = aiohttp.encode_basic_auth(quote_plus(config.client_id), quote_plus(config.client_secret))
    else:  # a public client identifies itself in the form
        form["client_id"] = config.client_id
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT, trust_env=False) as session:
            async with session.get(f"{issuer}/.well-known/openid-configuration") as response:
                discovery = await _json(response, f"issuer {issuer} discovery")
            endpoint = str(discovery.get("token_endpoint") or "")
            if not endpoint.startswith("https://"):
                raise OidcError(f"issuer {issuer} names no https token_endpoint")
            async with session.post(endpoint, data=form, headers=headers) as response:
                answer = await _json(response, f"issuer {issuer} token endpoint")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OidcError(f"issuer {issuer} unreachable: {type(exc).__name__}") from None
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise OidcError(f"issuer {issuer} answered the refresh without an id_token")
    new_refresh = answer.get("refresh_token")
    return Refreshed(
        id_token=id_token,
        refresh_token=new_refresh if isinstance(new_refresh, str) else "",
        expires_at=token_expiry(id_token),
    )
